"""Float against int8 ONNX as speechrnn-predict runs them: accuracy one file per call and
batched (overall and `_silence_`), file size and warm per-file latency, on a corpus's test split.

python scripts/benchmarks/quantized.py model.onnx model.int8.onnx --corpus ../shared/gsc_real_dev \
    --clips testclips [--silence-share 0.1] [--batch 512] [--calls 200]

The composed test split (speechrnn-eval's: known words, the seeded `_unknown_` draw, seeded
`_silence_` crops of the noise files over the full level range) is written once as PCM16 WAV
files under --clips, with labels.tsv (file, label, source); every model then classifies those
files through `Predictor.predict_files`, as `speechrnn-predict --batch-size N` does. Latency is
the warm `predict(file)` and, apart, onnxruntime alone on one thread.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrnn.audio import SAMPLE_RATE
from speechrnn.errors import SpeechRNNError
from speechrnn.inference.backends import OnnxBackend
from speechrnn.inference.predict import load_model
from speechrnn.inference.streaming import StreamConfig
from speechrnn.labels import SILENCE, UNKNOWN

LABELS_FILE = "labels.tsv"


def write_clips(corpus: Path, labels: list[str], out: Path, silence_share: float) -> Path:
    """The test split of `corpus` for `labels` as out/<label>/<n>.wav plus out/labels.tsv."""
    from speechrnn.data.settings import DataConfig
    from speechrnn.data.splits import load_split

    words = tuple(w for w in labels if w not in (SILENCE, UNKNOWN))
    data = DataConfig(root=str(corpus), words=words, silence_share=silence_share)
    split = load_split(data, "test", labels)
    rows = []
    for i, (wave, target, source) in enumerate(
        zip(split.waves, split.targets.tolist(), split.paths, strict=True)
    ):
        name = f"{labels[target]}/{i:05d}.wav"
        (out / labels[target]).mkdir(parents=True, exist_ok=True)
        sf.write(out / name, np.asarray(wave), SAMPLE_RATE, subtype="PCM_16")  # (T,) int16
        rows.append((name, labels[target], source))
    with (out / LABELS_FILE).open("w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([("file", "label", "source"), *rows])
    return out / LABELS_FILE


def read_labels(table: Path) -> tuple[list[Path], list[str]]:
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [table.parent / r["file"] for r in rows], [r["label"] for r in rows]


def score(model: Path, files: list[Path], truth: list[str], batch: int) -> dict[str, float]:
    """Accuracy overall and on `_silence_` clips, `batch` files per forward pass."""
    predictor = load_model(model, stream=StreamConfig(batch_size=batch))
    said = []
    for name, outcome in predictor.predict_files(files, batch):
        if isinstance(outcome, SpeechRNNError):
            raise SystemExit(f"{name}: {outcome}")
        said.append(outcome.label)
    hits = np.array(said) == np.array(truth)  # (N,)
    silence = hits[np.array(truth) == SILENCE]  # (S,)
    return {
        "accuracy": round(float(hits.mean()), 4),
        "silence_accuracy": round(float(silence.mean()), 4) if silence.size else float("nan"),
    }


def latency_ms(models: list[Path], files: list[Path], calls: int) -> dict[Path, float]:
    """Median ms of a warm `predict(file)` (decode included) per model, over `calls` files in
    turn, the models taking turns call by call so that they share the machine's load alike."""
    predictors = {m: load_model(m) for m in models}
    times: dict[Path, list[float]] = {m: [] for m in models}
    for i in range(-1, calls):  # the first round warms up
        for model, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict(files[max(i, 0) % len(files)])
            if i >= 0:
                times[model].append(time.perf_counter() - start)
    return {m: round(1e3 * statistics.median(t), 2) for m, t in times.items()}


def compute_ms(models: list[Path], calls: int) -> dict[Path, float]:
    """Median ms of onnxruntime alone on one clip of noise with one thread, models in turn:
    the model's own cost, apart from decoding and from waiting for a second busy core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 1, 4
    sessions = {m: ort.InferenceSession(str(m), options) for m in models}
    clip = {"audio": (0.1 * np.random.default_rng(0).standard_normal((1, 16_000))).astype("f4")}
    times: dict[Path, list[float]] = {m: [] for m in models}
    for i in range(-1, calls):
        for model, session in sessions.items():
            start = time.perf_counter()
            session.run(None, clip)
            if i >= 0:
                times[model].append(time.perf_counter() - start)
    return {m: round(1e3 * statistics.median(t), 2) for m, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX models (float, int8, ...)")
    parser.add_argument("--corpus", type=Path, required=True, help="a GSC-layout corpus")
    parser.add_argument("--clips", type=Path, required=True, help="where its test split goes")
    parser.add_argument("--silence-share", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=512, help="files per call, batched")
    parser.add_argument("--calls", type=int, default=200, help="latency: warm calls timed")
    args = parser.parse_args(argv)
    table = args.clips / LABELS_FILE
    if not table.is_file():
        write_clips(args.corpus, OnnxBackend(args.models[0]).labels, args.clips, args.silence_share)
    files, truth = read_labels(table)
    latency = latency_ms(args.models, files, args.calls)
    compute = compute_ms(args.models, args.calls)
    results = {
        str(m): {
            "size_mb": round(m.stat().st_size / 1e6, 3),
            "per_file": score(m, files, truth, 1),
            "batched": score(m, files, truth, args.batch),
            "latency_ms": latency[m],
            "compute_ms_1_thread": compute[m],
        }
        for m in args.models
    }
    print(json.dumps({"clips": len(files), "silence": truth.count(SILENCE), **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
