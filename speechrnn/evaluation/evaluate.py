"""evaluate(): batched inference of a checkpoint on a corpus split, written out as a report dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechrnn.audio import PCM_SCALE
from speechrnn.checkpoint import load_checkpoint, resolve_device
from speechrnn.config import from_mapping, hydra_output_dir
from speechrnn.console import counting
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import SplitData, load_split
from speechrnn.errors import ConfigError
from speechrnn.evaluation.metrics import by_accuracy, classification_metrics, errors_only
from speechrnn.evaluation.report import (
    Section,
    plot_calibration,
    plot_confusion,
    plot_per_class,
    render_html,
    render_markdown,
    write_csv,
)
from speechrnn.labels import SPLITS
from speechrnn.model import StackedLSTMClassifier


def evaluate(
    ckpt_path: str | os.PathLike[str],
    data: DataConfig,
    split: str = "test",
    report_dir: str | os.PathLike[str] = "report",
    batch_size: int = 512,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Evaluate `ckpt_path` on `split` of the corpus `data` describes; return the report dir."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    ckpt_path, out = Path(ckpt_path), Path(report_dir)
    model = load_checkpoint(ckpt_path, resolve_device(device))
    clips = load_split(data, split, model.labels, seed=seed, progress=progress)
    probs = predict_probabilities(model, clips.waves, batch_size, progress)  # (N, C)
    metrics = classification_metrics(clips.targets, probs, model.labels, clips.speakers)
    metrics.update(
        checkpoint=str(ckpt_path.resolve()),
        checkpoint_sha256=_sha256(ckpt_path),
        corpus=str(clips.root),
        split=split,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        parameters=model.num_parameters(),
        model_settings=model.metadata(),
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_report(out, metrics, clips, probs, _training_config(ckpt_path))
    _print_summary(metrics, out)
    return out


def evaluate_config(cfg: Any) -> Path:
    """Hydra adapter for speechrnn-eval (conf/eval.yaml)."""
    report_dir = cfg.get("report_dir") or hydra_output_dir()
    return evaluate(
        cfg.ckpt_path,
        from_mapping(DataConfig, cfg.data, "data"),
        split=cfg.split,
        report_dir=report_dir,
        batch_size=cfg.batch_size,
        device=cfg.device,
    )


@torch.inference_mode()
def predict_probabilities(
    model: StackedLSTMClassifier, waves: np.ndarray, batch_size: int, progress: bool = True
) -> np.ndarray:
    """Softmax outputs (N, C) for int16 clips (N, T), batch by batch on the model's device."""
    device = next(model.parameters()).device
    out = np.empty((len(waves), len(model.labels)), dtype=np.float32)
    with counting("evaluating", len(waves), progress, transient=True) as advance:
        for start in range(0, len(waves), batch_size):
            chunk = torch.from_numpy(np.array(waves[start : start + batch_size]))  # (b, T) int16
            batch = chunk.to(device, non_blocking=True).float() / PCM_SCALE  # (b, T)
            out[start : start + len(chunk)] = model(batch).softmax(dim=-1).cpu().numpy()
            advance(len(chunk))
    return out


def _write_report(
    out: Path, metrics: dict[str, Any], clips: SplitData, probs: np.ndarray, config: str | None
) -> None:
    labels = metrics["confusion"]["labels"]
    matrix = np.array(metrics["confusion"]["matrix"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = [[labels[i], *row] for i, row in enumerate(matrix.tolist())]
    write_csv(out / "confusion.csv", ["true \\ predicted", *labels], rows)
    predicted = probs.argmax(axis=1)
    top3 = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    wrong = np.flatnonzero(predicted != clips.targets)
    write_csv(
        out / "errors.csv",
        ["path", "speaker", "true", "predicted", "probability", "top3"],
        [
            [
                clips.paths[i],
                clips.speakers[i],
                labels[clips.targets[i]],
                labels[predicted[i]],
                f"{probs[i, predicted[i]]:.4f}",
                " ".join(f"{labels[k]}:{probs[i, k]:.3f}" for k in top3[i]),
            ]
            for i in wrong
        ],
    )
    plot_confusion(matrix, labels, out / "confusion.png")
    plot_per_class(metrics["per_class"], out / "per_class.png")
    ece = metrics["expected_calibration_error"]
    plot_calibration(metrics["reliability"], ece, out / "calibration.png")
    sections = _sections(metrics, config)
    title = f"speechrnn evaluation: {Path(metrics['checkpoint']).name} on {metrics['split']}"
    (out / "report.md").write_text(render_markdown(title, sections))
    (out / "report.html").write_text(render_html(title, sections, out))


def _sections(metrics: dict[str, Any], config: str | None) -> list[Section]:
    spread = metrics["per_speaker"]
    classes = by_accuracy(metrics["per_class"])
    settings = metrics["model_settings"]
    sections = [
        Section(
            "Headline",
            [f"Corpus `{metrics['corpus']}`, split `{metrics['split']}`, {metrics['date']}."],
            ("metric", "value"),
            [
                ("clips", metrics["clips"]),
                ("accuracy", f"{metrics['accuracy']:.4f}"),
                ("top-3 accuracy", f"{metrics['top3_accuracy']:.4f}"),
                ("macro F1", f"{metrics['macro']['f1']:.4f}"),
                ("weighted F1", f"{metrics['weighted']['f1']:.4f}"),
                ("expected calibration error", f"{metrics['expected_calibration_error']:.4f}"),
                ("parameters", f"{metrics['parameters']:,}"),
            ],
        ),
        Section("Confusions", images=["confusion.png"]),
        Section(
            "Most confused pairs",
            ["Clips of the true label predicted as another, most frequent first."],
            ("true", "predicted", "clips", "share of true label"),
            [
                (p["true"], p["predicted"], p["count"], f"{p['rate']:.1%}")
                for p in metrics["most_confused"]
            ],
        ),
        Section(
            "Per-class accuracy",
            ["Accuracy: the share of a label's clips predicted as it (its recall); worst first."],
            ("label", "accuracy", "precision", "F1", "clips"),
            [
                (k, f"{v['recall']:.3f}", f"{v['precision']:.3f}", f"{v['f1']:.3f}", v["support"])
                for k, v in classes
            ],
            images=["per_class.png"],
        ),
        Section(
            "Per-speaker accuracy",
            [
                f"{spread['speakers']} speakers: mean {spread['mean']:.3f}, "
                f"std {spread['std']:.3f}, min {spread['min']:.3f}, quartiles "
                f"{spread['q25']:.3f} / {spread['median']:.3f} / {spread['q75']:.3f}, "
                f"max {spread['max']:.3f}."
            ],
            ("worst speakers", "accuracy", "clips"),
            [(w["speaker"], f"{w['accuracy']:.3f}", w["clips"]) for w in spread["worst"]],
        ),
        Section("Calibration", images=["calibration.png"]),
        Section(
            "Configuration",
            [
                f"Checkpoint `{metrics['checkpoint']}`, sha256 {metrics['checkpoint_sha256']}.",
                "Labels: " + ", ".join(settings["labels"]) + ".",
                "Model: " + ", ".join(f"{k}={v}" for k, v in settings["model"].items()) + ".",
                "Features: " + ", ".join(f"{k}={v}" for k, v in settings["features"].items()) + ".",
            ]
            + ([f"Training config:\n{config}"] if config else []),
        ),
    ]
    return sections


def _training_config(ckpt_path: Path) -> str | None:
    """The resolved Hydra config of the run the checkpoint came from, if it sits in a run dir."""
    for parent in list(ckpt_path.resolve().parents)[:2]:
        candidate = parent / ".hydra" / "config.yaml"
        if candidate.is_file():
            return candidate.read_text()
    return None


def _print_summary(metrics: dict[str, Any], out: Path) -> None:
    """The headline, the five classes with the lowest accuracy and the speaker spread."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics['split']} split, {metrics['clips']} clips")
    table.add_column("metric")
    table.add_column("value", justify="right")
    headline = (
        ("accuracy", "accuracy"),
        ("top-3 accuracy", "top3_accuracy"),
        ("ECE", "expected_calibration_error"),
    )
    for name, key in headline:
        table.add_row(name, f"{metrics[key]:.4f}")
    table.add_row("macro F1", f"{metrics['macro']['f1']:.4f}")
    spread = metrics["per_speaker"]
    if spread["speakers"]:
        table.add_row(
            f"per speaker ({spread['speakers']})",
            f"{spread['mean']:.3f} ± {spread['std']:.3f}, min {spread['min']:.3f}",
        )
    worst = Table(title="lowest per-class accuracy")
    for name in ("label", "accuracy", "clips", "most often taken for"):
        worst.add_column(
            name, justify="left" if name in ("label", "most often taken for") else "right"
        )
    labels, matrix = metrics["confusion"]["labels"], errors_only(metrics["confusion"]["matrix"])
    for label, score in by_accuracy(metrics["per_class"])[:5]:
        errors = matrix[labels.index(label)]  # (C,)
        taken = f"{labels[int(errors.argmax())]} ({errors.max()})" if errors.any() else "-"
        worst.add_row(label, f"{score['recall']:.3f}", str(score["support"]), taken)
    console = Console()
    console.print(table)
    console.print(worst)
    print(f"report: {out / 'report.html'}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
