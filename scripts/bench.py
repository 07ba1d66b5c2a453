#!/usr/bin/env python3
"""Every speechrnn benchmark in one run, each next to a baseline measured in the same run.

python scripts/bench.py [--work DIR] [--out bench.json] [--gpu | --gpu-only] [--gsc-epochs 30]
                        [--quick] [--only memory --model CKPT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as speechrnn-predict does
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # tone corpus, librosa MFCC

import torch
from torch.utils.data import DataLoader

from speechrnn import CONFIG_DIR
from speechrnn.audio import load_audio
from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.index import scan_corpus
from speechrnn.features import MFCC, FeatureConfig

from benchmarks.data import LibrosaClips, bench_corpus, benchmark
from support.reference import reference_mfcc

Row = tuple[str, float, str, float | None, str]  # name, ours, unit, baseline, baseline's name
LIBROSA_DATASET = "librosa Dataset, 2 workers, not augmented"


def bench_mfcc(device: str, clips: int = 2048) -> dict[str, float]:
    """Batched torchaudio MFCC on `device` vs librosa one clip at a time, clips per second."""
    cfg = FeatureConfig()
    waves = torch.randn(clips, 16000) * 0.1  # (N, T)
    front = MFCC(cfg).to(device)
    with torch.inference_mode():
        front(waves[:256].to(device))
        start = time.perf_counter()
        for chunk in waves.split(512):
            front(chunk.to(device))
        _sync(device)
        ours = clips / (time.perf_counter() - start)
    subset = waves[: max(64, clips // 16)].numpy()
    start = time.perf_counter()
    for wave in subset:
        reference_mfcc(wave, cfg)
    return {"clips_per_s": ours, "librosa_clips_per_s": len(subset) / (time.perf_counter() - start)}


def bench_train(
    corpus: Path,
    run_dir: Path,
    model: str,
    trainer: str,
    epochs: int,
    batch_size: int,
    precision: str = "auto",
) -> dict[str, Any]:
    """speechrnn-train's own figures (train clips/s excludes validation) for `model`."""
    from hydra import compose, initialize_config_dir

    from speechrnn.training.train import train

    overrides = [
        f"data.root={corpus}",
        "data.words=null",
        "data.silence_share=0",
        "data.unknown_share=0",
        f"data.batch_size={batch_size}",
        f"model={model}",
        f"trainer={trainer}",
        f"trainer.max_epochs={epochs}",
        f"trainer.precision={precision}",
        "trainer.progress_bar=false",
        "evaluate=false",
        f"run_dir={run_dir}",
    ]
    if trainer.endswith("ddp"):  # DDP starts its other processes by running the command again
        cli = Path(sys.executable).parent / "speechrnn-train"
        subprocess.run([str(cli), *overrides], check=True, stdout=subprocess.DEVNULL)
        return json.loads((run_dir / "metrics.json").read_text())
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return train(compose("train", overrides=overrides))


def bench_train_baseline(
    corpus: Path,
    ckpt: Path,
    device: str,
    batch_size: int,
    workers: int,
    seconds: float,
    precision: str,
) -> float:
    """The same model, optimiser and precision fed by a per-item librosa Dataset: clips/s."""
    model = load_checkpoint(ckpt, device).train()
    dataset = LibrosaClips(corpus, list(scan_corpus(corpus).splits["train"]))
    loader = DataLoader(
        dataset,
        batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    clips, start = 0, None
    while start is None or time.perf_counter() - start < seconds:
        for waves, targets in loader:
            with torch.autocast(device, torch.bfloat16, enabled=precision == "bf16-mixed"):
                logits = model(waves.to(device))  # (B, classes)
            loss = torch.nn.functional.cross_entropy(logits.float(), targets.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if start is None:  # workers and kernels warmed up
                _sync(device)
                start = time.perf_counter()
                continue
            clips += waves.shape[0]
            if time.perf_counter() - start > seconds:
                break
    _sync(device)
    return clips / (time.perf_counter() - start)


def bench_eval(ckpt: Path, corpus: Path, device: str) -> dict[str, float]:
    """evaluate() on the test split (batched on the device) vs one clip at a time from files."""
    from speechrnn.data.settings import DataConfig
    from speechrnn.evaluation.evaluate import evaluate

    data = DataConfig(root=str(corpus), words=None, silence_share=0.0, unknown_share=0.0)
    start = time.perf_counter()
    report = evaluate(ckpt, data, "test", corpus.parent / "report", device=device, progress=False)
    seconds = time.perf_counter() - start
    clips = json.loads((report / "metrics.json").read_text())["clips"]
    model = load_checkpoint(ckpt, device)
    paths = list(scan_corpus(corpus).splits["test"])[:200]
    start = time.perf_counter()
    with torch.inference_mode():
        for rel in paths:
            model(torch.from_numpy(load_audio(corpus / rel))[None].to(device)).softmax(-1).cpu()
    per_clip = len(paths) / (time.perf_counter() - start)
    return {
        "clips": clips,
        "seconds": seconds,
        "clips_per_s": clips / seconds,
        "per_clip_baseline_clips_per_s": per_clip,
    }


def run(work: Path, device: str, gsc_epochs: int, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks.predict import bench_predict
    from benchmarks.serve import bench_serve
    from benchmarks.synth import bench_synth

    trainer = "gpu" if device == "cuda" else "cpu"
    seconds = 3.0 if quick else 10.0
    results: dict[str, Any] = {}
    rows: list[Row] = []
    if device == "cpu":
        results["synth"] = bench_synth(speakers=10 if quick else 100)
        rows.append(("speechrnn-synth, 35 words", results["synth"]["seconds"], "s", None, ""))
    results["data"] = data = benchmark(
        work / "data", 5_000 if quick else 20_000, device, seconds=seconds
    )
    librosa = data["baseline"]["clips_per_s"]  # the same baseline for both rows
    for what, key in (
        ("default augmentation", "datamodule"),
        ("not augmented", "datamodule_not_augmented"),
    ):
        speed = data[key]["clips_per_s"]
        rows.append((f"data pipeline, {what}", speed, "clips/s", librosa, LIBROSA_DATASET))
    results["mfcc"] = mfcc = bench_mfcc(device)
    rows.append(
        (
            "MFCC front end, batched",
            mfcc["clips_per_s"],
            "clips/s",
            mfcc["librosa_clips_per_s"],
            "librosa, one clip at a time",
        )
    )
    corpus = work / "data" / "corpus"
    epochs = 1 if quick else 2
    for model in ("lstm_small", "lstm"):
        metrics = bench_train(corpus, work / f"train_{model}", model, trainer, epochs, 256)
        ckpt = Path(metrics["best_checkpoint"])
        base = bench_train_baseline(
            corpus, ckpt, device, 256, workers=2, seconds=seconds, precision=metrics["precision"]
        )
        results[f"train_{model}"] = {**metrics, "baseline_clips_per_s": base}
        rows.append(
            (
                f"training, model={model} ({metrics['parameters']:,} params), "
                f"{metrics['precision']}",
                metrics["train_clips_per_second"],
                "clips/s",
                base,
                "same model, librosa Dataset",
            )
        )
    other = "32-true" if results["train_lstm"]["precision"] == "bf16-mixed" else "bf16-mixed"
    key = f"train_lstm_{other}"
    results[key] = bench_train(corpus, work / key, "lstm", trainer, epochs, 256, other)
    runs = {results[k]["precision"]: results[k] for k in ("train_lstm", key)}
    rows.append(
        (
            "training, model=lstm, trainer.precision=bf16-mixed",
            runs["bf16-mixed"]["train_clips_per_second"],
            "clips/s",
            runs["32-true"]["train_clips_per_second"],
            "same, 32-true",
        )
    )
    if device == "cpu":
        results["train_lstm_cpu_ddp"] = ddp = bench_train(
            corpus, work / "train_lstm_cpu_ddp", "lstm", "cpu_ddp", epochs, 256
        )
        rows.append(
            (
                "training, model=lstm, trainer=cpu_ddp (2 one-thread processes)",
                ddp["train_clips_per_second"],
                "clips/s",
                results["train_lstm"]["train_clips_per_second"],
                "same, trainer=cpu",
            )
        )
    results["eval"] = ev = bench_eval(ckpt, corpus, device)
    rows.append(
        (
            f"evaluation, {ev['clips']} test clips",
            ev["clips_per_s"],
            "clips/s",
            ev["per_clip_baseline_clips_per_s"],
            "one file at a time",
        )
    )
    if device == "cpu":
        results["predict"] = p = bench_predict(ckpt, repeats=3 if quick else 5)
        rows += [
            (
                "predict cold start, checkpoint",
                p["cold_ckpt_s"],
                "s",
                p["import_torch_s"],
                "python -c 'import torch'",
            ),
            (
                "predict cold start, ONNX",
                p["cold_onnx_s"],
                "s",
                p["import_onnxruntime_s"],
                "python -c 'import onnxruntime'",
            ),
            ("predict warm latency, checkpoint", p["warm_ckpt_ms"], "ms", None, ""),
            ("predict warm latency, ONNX", p["warm_onnx_ms"], "ms", None, ""),
            ("predict a folder, checkpoint", p["folder_ckpt_files_per_s"], "files/s", None, ""),
            ("predict a folder, ONNX", p["folder_onnx_files_per_s"], "files/s", None, ""),
        ]
        results["serve"] = s = bench_serve(ckpt, corpus, requests=16 if quick else 64)
        for tag, name in (("ckpt", "checkpoint"), ("onnx", "ONNX")):
            rows += [
                (f"serve POST p50, 1 client, {name}", s[f"{tag}_1_clients_p50_ms"], "ms", None, ""),
                (
                    f"serve POST p95, 8 clients, {name}",
                    s[f"{tag}_8_clients_p95_ms"],
                    "ms",
                    None,
                    "",
                ),
                (f"serve live delay, {name}", s[f"{tag}_live_delay_median_ms"], "ms", None, ""),
            ]
    if device == "cpu":
        results["memory"], memory = _memory(ckpt, work, quick)
        rows += memory
    if device == "cuda" and gsc_epochs:
        results["gsc_sized"] = gsc = bench_gsc_sized(work, gsc_epochs, seconds)
        rows.append(
            (
                f"GSC-v2-sized run, {gsc['epochs']} epochs, model=lstm",
                gsc["wall_seconds"],
                "s",
                gsc["baseline_wall_seconds_estimate"],
                "same model, librosa Dataset",
            )
        )
    return results, rows


def bench_gsc_sized(work: Path, epochs: int, seconds: float) -> dict[str, Any]:
    """The default model on a ~105k-clip corpus for `epochs`, vs the per-item loader's pace."""
    corpus = bench_corpus(work / "gsc_sized" / "corpus", 105_000)
    metrics = bench_train(corpus, work / "gsc_sized" / "run", "lstm", "gpu", epochs, 512)
    base = bench_train_baseline(
        corpus,
        Path(metrics["best_checkpoint"]),
        "cuda",
        512,
        workers=os.cpu_count() or 2,
        seconds=seconds,
    )
    train_clips = len(scan_corpus(corpus).splits["train"])
    return {
        **metrics,
        "baseline_clips_per_s": base,
        "baseline_wall_seconds_estimate": epochs * train_clips / base,
    }


def _memory(ckpt: Path, work: Path, quick: bool) -> tuple[list[dict[str, Any]], list[Row]]:
    """Peak RSS of speechrnn-predict on 1 s, 1 min and 1 h (--quick: no hour) at 16 and 192 kHz."""
    from benchmarks.memory import DURATIONS, bench_memory, memory_rows

    work.mkdir(parents=True, exist_ok=True)
    found = bench_memory(ckpt, durations=DURATIONS[:2] if quick else DURATIONS, work=work)
    return found, memory_rows(found)


def _sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def print_table(rows: list[Row], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("benchmark", "speechrnn", "baseline", "ratio"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, ours, unit, base, base_name in rows:
        ratio = "" if base is None else f"{ours / base:.2f}x"
        baseline = "" if base is None else f"{base:,.1f} {unit} ({base_name})"
        table.add_row(name, f"{ours:,.1f} {unit}", baseline, ratio)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench"), help="reused scratch dir")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--gpu", action="store_true", help="also the CUDA figures")
    parser.add_argument("--gpu-only", action="store_true", help="the CUDA figures alone")
    parser.add_argument("--gsc-epochs", type=int, default=30, help="GSC-sized GPU run; 0: skip")
    parser.add_argument("--quick", action="store_true", help="smaller corpora, shorter timings")
    parser.add_argument("--only", choices=["memory"], help="this benchmark alone (CPU)")
    parser.add_argument("--model", type=Path, help="--only memory: the checkpoint to measure")
    args = parser.parse_args(argv)
    if args.only and args.model is None:
        parser.error("--only memory needs --model CKPT")
    gpu = args.gpu or args.gpu_only
    devices = ([] if args.gpu_only else ["cpu"]) + (["cuda"] if gpu else [])
    if gpu and not torch.cuda.is_available():
        print("error: --gpu/--gpu-only given but torch sees no CUDA GPU", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.processor() or ''}",
        "gpu": torch.cuda.get_device_name() if gpu else None,
        "torch": torch.__version__,
        "features": asdict(FeatureConfig()),
    }
    for device in ["cpu"] if args.only else devices:
        if args.only:
            found, rows = _memory(args.model, args.work / "cpu", args.quick)
            results: dict[str, Any] = {"memory": found}
        else:
            results, rows = run(args.work / device, device, args.gsc_epochs, args.quick)
        report[device] = {"results": results, "rows": [list(r) for r in rows]}
        print_table(rows, f"speechrnn benchmarks on {device} ({report['date']})")
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
