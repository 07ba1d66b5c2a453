"""evaluate(): batched inference of a checkpoint on a corpus split, written out as a report dir."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from speechrnn.audio import PCM_SCALE
from speechrnn.console import counting
from speechrnn.data.files import sha256_file
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import SplitData, load_split
from speechrnn.errors import ConfigError
from speechrnn.evaluation.metrics import by_accuracy, classification_metrics, errors_only
from speechrnn.evaluation.report import (
    Section,
    plot_calibration,
    plot_confusion,
    plot_learning_curves,
    plot_per_class,
    read_history,
    render_html,
    render_markdown,
    write_csv,
    write_wav,
)
from speechrnn.evaluation.settings import EvalConfig
from speechrnn.evaluation.shipped_point import point_text
from speechrnn.evaluation.spotter import open_spotter
from speechrnn.evaluation.streaming_eval import StreamingSettings, evaluate_streaming
from speechrnn.evaluation.streaming_eval import sections as streaming_sections
from speechrnn.inference.backends import Backend, TorchBackend
from speechrnn.inference.listening import StepBackend
from speechrnn.inference.streaming import StreamConfig
from speechrnn.labels import SPLITS
from speechrnn.metadata import from_onnx_properties


def evaluate(
    ckpt_path: str | os.PathLike[str],
    data: DataConfig,
    split: str = EvalConfig.split,
    report_dir: str | os.PathLike[str] = "report",
    batch_size: int = EvalConfig.batch_size,
    device: str = EvalConfig.device,
    seed: int = 0,
    progress: bool = True,
    audio_examples: int = EvalConfig.audio_examples,
    streaming: StreamingSettings | None = None,
) -> Path:
    """Evaluate a checkpoint or ONNX model on `split` of the corpus `data` describes.

    With `streaming`, also score the detector on a long recording (see streaming_eval): a
    causal checkpoint's or a stream ONNX file's listener, else 1 s sliding windows.
    Returns the report dir.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if audio_examples < 0:
        raise ConfigError(f"audio_examples cannot be negative, got {audio_examples}")
    ckpt_path, out = Path(ckpt_path), Path(report_dir)
    spotter = open_spotter(ckpt_path, device, streaming.stream if streaming else StreamConfig())
    backend = spotter.backend
    parameters, settings = _model_info(backend)
    clips = load_split(data, split, backend.labels, seed=seed, progress=progress)
    probs = predict_probabilities(backend, clips.waves, batch_size, progress)  # (N, C)
    metrics = classification_metrics(clips.targets, probs, backend.labels, clips.speakers)
    metrics.update(
        checkpoint=str(ckpt_path.resolve()),
        checkpoint_sha256=sha256_file(ckpt_path, progress=False),
        model_bytes=ckpt_path.stat().st_size,
        corpus=str(clips.root),
        split=split,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        parameters=parameters,
        model_settings=settings,
    )
    out.mkdir(parents=True, exist_ok=True)
    if streaming is not None:
        recording = streaming.recording(clips, data, backend.labels, progress)
        metrics["streaming"] = evaluate_streaming(
            spotter, recording, streaming.spotting, out, progress
        )
    _write_report(out, metrics, clips, probs, ckpt_path, audio_examples)
    _print_summary(metrics, out)
    return out


def predict_probabilities(
    model: Backend, waves: np.ndarray, batch_size: int, progress: bool = True
) -> np.ndarray:
    """Softmax outputs (N, C) for int16 clips (N, T), batch by batch through the backend."""
    out = np.empty((len(waves), len(model.labels)), dtype=np.float32)
    with counting("evaluating", len(waves), progress, transient=True) as advance:
        for start in range(0, len(waves), batch_size):
            batch = np.asarray(waves[start : start + batch_size], np.float32) / PCM_SCALE  # (b, T)
            out[start : start + len(batch)] = model(batch)
            advance(len(batch))
    return out


def _model_info(backend: Backend) -> tuple[int | None, dict[str, Any]]:
    """(parameter count or None for ONNX, the settings the model was built with)."""
    if isinstance(backend, TorchBackend):
        return backend.model.num_parameters(), backend.model.metadata()
    onnx = backend.step if isinstance(backend, StepBackend) else backend  # a stream step's file
    props = onnx.session.get_modelmeta().custom_metadata_map  # type: ignore[attr-defined]
    return None, from_onnx_properties(props)


def _write_report(
    out: Path,
    metrics: dict[str, Any],
    clips: SplitData,
    probs: np.ndarray,
    ckpt_path: Path,
    audio_examples: int,
) -> None:
    labels = metrics["confusion"]["labels"]
    matrix = np.array(metrics["confusion"]["matrix"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = [[labels[i], *row] for i, row in enumerate(matrix.tolist())]
    write_csv(out / "confusion.csv", ["true \\ predicted", *labels], rows)
    predicted = probs.argmax(axis=1)
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
                _top3(probs[i], labels),
            ]
            for i in wrong
        ],
    )
    plot_confusion(matrix, labels, out / "confusion.png")
    plot_per_class(metrics["per_class"], out / "per_class.png")
    ece = metrics["expected_calibration_error"]
    plot_calibration(metrics["reliability"], ece, out / "calibration.png")
    sections = _sections(metrics, _training_config(ckpt_path))
    sections.insert(4, _misclassified(out, clips, probs, labels, audio_examples))
    history = _history(ckpt_path)
    if history:
        plot_learning_curves(history, out / "learning_curves.png")
        sections.insert(1, Section("Learning curves", images=["learning_curves.png"]))
    if "streaming" in metrics:
        sections[1:1] = streaming_sections(metrics["streaming"])
    title = f"speechrnn evaluation: {Path(metrics['checkpoint']).name} on {metrics['split']}"
    (out / "report.md").write_text(render_markdown(title, sections))
    (out / "report.html").write_text(render_html(title, sections, out))


def _top3(probs: np.ndarray, labels: list[str]) -> str:
    top = np.argsort(-probs, kind="stable")[:3]
    return " ".join(f"{labels[k]}:{probs[k]:.3f}" for k in top)


def _misclassified(
    out: Path, clips: SplitData, probs: np.ndarray, labels: list[str], limit: int
) -> Section:
    """The wrong clips with the least probability on their true label, playable in the page."""
    true_p = probs[np.arange(len(clips.targets)), clips.targets]  # (N,)
    wrong = np.flatnonzero(probs.argmax(axis=1) != clips.targets)
    worst = wrong[np.argsort(true_p[wrong], kind="stable")][:limit]
    folder = out / "clips"
    shutil.rmtree(folder, ignore_errors=True)
    rows, audio = [], []
    for rank, i in enumerate(worst, 1):
        true, guess = labels[clips.targets[i]], labels[int(probs[i].argmax())]
        wav = f"clips/{rank:03d}_{true}_as_{guess}.wav"
        write_wav(out / wav, np.asarray(clips.waves[i]))
        rows.append(
            (rank, clips.paths[i], true, guess, f"{true_p[i]:.3f}", _top3(probs[i], labels))
        )
        audio.append(
            (
                f"{rank}. {clips.paths[i]}: true {true}, predicted {guess} "
                f"(top-3 {_top3(probs[i], labels)})",
                wav,
            )
        )
    return Section(
        "Misclassified clips",
        [
            f"{len(wrong)} clips are wrong; the {len(worst)} with the least probability on their "
            "true label, worst first (audio_examples sets how many)."
        ],
        ("#", "clip", "true", "predicted", "p(true)", "top-3"),
        rows,
        audio=audio,
    )


def _history(ckpt_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch losses and accuracies of the run the checkpoint came from, if it logged them."""
    for parent in list(ckpt_path.resolve().parents)[:2]:
        candidate = parent / "csv" / "metrics.csv"
        if candidate.is_file():
            return read_history(candidate)
    return {}


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
                (
                    "parameters",
                    "-" if metrics["parameters"] is None else f"{metrics['parameters']:,}",
                ),
                ("model file", f"{metrics['model_bytes'] / 1e6:.2f} MB"),
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
    shipped = metrics.get("streaming", {}).get("shipped")
    if shipped is not None:
        overall = shipped["overall"]
        print(
            f"shipped operating point ({point_text(shipped['point'])}): miss rate "
            f"{overall['frr']:.3f}, {overall['fa_per_hour']:.2f} FA/h on the long recording"
        )
    print(f"report: {out / 'report.html'}")
