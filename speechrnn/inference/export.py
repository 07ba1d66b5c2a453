"""ONNX export with the MFCC front end inside the graph, parity-checked before it is written."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio
from speechrnn.checkpoint import load_checkpoint
from speechrnn.console import quiet
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.errors import AudioError, ConfigError, ExportError
from speechrnn.inference.backends import Backend, OnnxBackend
from speechrnn.inference.inputs import expand_inputs
from speechrnn.inference.quantize import QUANTIZATIONS, Comparison, compare, quantize_int8
from speechrnn.labels import keywords
from speechrnn.metadata import onnx_properties
from speechrnn.model import StackedLSTMClassifier
from speechrnn.version import __version__

OPSET = 18


@dataclass(frozen=True)
class ExportConfig:
    """speechrnn-export settings (conf/export.yaml)."""

    ckpt_path: str
    out: str = "model.onnx"
    audio: str | None = None  # dir or glob of real clips for the parity check
    max_clips: int = 64  # real clips used at most
    tolerance: float = 1e-3  # max abs probability difference: onnx/torch, int8 alone/batched
    quantize: str | None = None  # int8: also write <out stem>.int8.onnx
    heldout: str | None = None  # GSC-layout corpus: accuracy of both models on its test split
    heldout_clips: int = 2000  # its clips used at most
    max_accuracy_drop: float = 0.01  # int8 refused when it loses more accuracy than this

    def __post_init__(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise ConfigError(
                f"export.quantize must be null or one of {', '.join(QUANTIZATIONS)}, "
                f"got {self.quantize!r}"
            )
        if self.heldout_clips < 1:
            raise ConfigError(f"export.heldout_clips must be at least 1, got {self.heldout_clips}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise ConfigError(
                f"export.max_accuracy_drop must be in [0, 1], got {self.max_accuracy_drop}"
            )
        if self.max_clips < 0:
            raise ConfigError(f"export.max_clips cannot be negative, got {self.max_clips}")
        if not 0.0 < self.tolerance < 1.0:
            raise ConfigError(f"export.tolerance must be in (0, 1), got {self.tolerance}")


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how closely it matches the eager model."""

    path: Path
    labels: list[str]
    max_abs_diff: float
    clips: int
    int8_path: Path | None = None
    int8: Comparison | None = None


class Probabilities(nn.Module):
    """The exported graph: (B, 16000) raw audio -> (B, classes) probabilities."""

    def __init__(self, model: StackedLSTMClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(wave).softmax(dim=-1)  # (B, classes)


def probe_signals(count: int = 12, seed: int = 0) -> np.ndarray:
    """(count, 16000) deterministic probes in [-1, 1], each an event over faint noise.

    A beep, a chirp, a vowel-like burst, clicks, clipping, noise bursts, near-silence. Digital
    silence and steady pure tones are left out: their normalised MFCCs are mostly amplified
    rounding noise (and the predictors answer digital silence without the model).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE  # (T,)
    envelope = np.exp(-(((t - 0.5) / 0.15) ** 2))  # (T,)
    beep = (np.abs(t - 0.5) < 0.15) * np.sin(2 * np.pi * 440 * t)
    clicks = np.zeros(CLIP_SAMPLES)
    clicks[[2000, 7000, 7100, 12000]] = [0.9, -0.6, 0.5, 0.8]
    vowel = np.sin(2 * np.pi * (180 + 120 * t) * t) * (1 + np.sin(2 * np.pi * 5 * t))
    events = [
        0.5 * beep,
        0.3 * np.sin(2 * np.pi * (100 + 3000 * t) * t),
        0.4 * envelope * vowel,
        clicks,
        np.clip(3 * envelope * np.sin(2 * np.pi * 250 * t), -1, 1),
        np.zeros(CLIP_SAMPLES),  # near-silence: the floor noise alone
    ]
    while len(events) < count:
        events.append(envelope * rng.uniform(0.05, 0.4) * rng.standard_normal(CLIP_SAMPLES))
    floor = 1e-4 * rng.standard_normal((count, CLIP_SAMPLES))  # (count, T)
    return np.clip(np.stack(events[:count]) + floor, -1, 1).astype(np.float32)


def real_clips(audio: str, limit: int) -> np.ndarray:
    """(n, 16000) clips from a dir or glob, as the model sees them; n <= limit, evenly spread."""
    entries = expand_inputs([audio])
    clips = []
    for entry in entries[:: max(1, -(-len(entries) // max(1, limit)))][:limit]:
        if isinstance(entry, AudioError):
            raise entry
        clips.append(load_audio(entry))
    return np.stack(clips) if clips else np.zeros((0, CLIP_SAMPLES), np.float32)


def export_onnx(
    ckpt_path: str | os.PathLike[str],
    out: str | os.PathLike[str] = "model.onnx",
    audio: str | None = None,
    max_clips: int = 64,
    tolerance: float = 1e-3,
) -> ExportResult:
    """Export a checkpoint to ONNX, check it against eager on probes (+ real clips), write it."""
    out = Path(out)
    model = load_checkpoint(ckpt_path, "cpu")
    clips = probe_signals()
    if audio:
        clips = np.concatenate([clips, real_clips(audio, max_clips)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _write_graph(model, tmp, _metadata(model, Path(ckpt_path)))
        diff = _max_abs_diff(model, OnnxBackend(tmp), clips)
        if not diff <= tolerance:
            raise ExportError(
                f"{out}: not written: the ONNX model differs from the eager model by "
                f"{diff:.2e} (tolerance {tolerance:.0e})"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, list(model.labels), diff, clips.shape[0])


def _metadata(model: StackedLSTMClassifier, ckpt: Path) -> dict[str, str]:
    return onnx_properties(
        model.metadata(),
        sample_rate=str(SAMPLE_RATE),
        clip_samples=str(CLIP_SAMPLES),
        source_checkpoint=ckpt.name,
        speechrnn_version=__version__,
    )


def _write_graph(model: StackedLSTMClassifier, path: Path, metadata: dict[str, str]) -> None:
    """The per-clip graph, (B, CLIP_SAMPLES) audio -> (B, classes) probabilities."""
    example = torch.zeros(2, CLIP_SAMPLES)  # (B, T)
    shapes = ({0: torch.export.Dim("batch")},)
    graph = Probabilities(model)
    write_onnx(graph, (example,), shapes, ["audio"], ["probabilities"], path, metadata)


def write_onnx(
    graph: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    dynamic_shapes: tuple[dict[int, Any], ...],
    input_names: list[str],
    output_names: list[str],
    path: Path,
    metadata: dict[str, str],
) -> None:
    """torch.onnx (dynamo) export of `graph` in eval mode with `metadata` as its properties;
    the exporter's chatter is muted."""
    import onnx

    with quiet():
        program = torch.onnx.export(
            graph.eval(),
            example,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            verbose=False,
        )
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(path))


def _max_abs_diff(
    model: StackedLSTMClassifier, onnx_model: OnnxBackend, clips: np.ndarray
) -> float:
    """Largest |p_onnx - p_eager| over the clips (batched, to exercise the dynamic axis)."""
    with torch.inference_mode():
        eager = model(torch.from_numpy(clips)).softmax(dim=-1).numpy()  # (N, classes)
    exported = onnx_model(clips)  # (N, classes)
    return float(np.abs(exported - eager).max())


def heldout_clips(root: str, labels: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16000) float32 clips and (n,) targets from the test split of a GSC-layout corpus,
    mapped to `labels` as speechrnn-eval does (`_silence_` crops included); at most `limit`,
    evenly spread."""
    words = tuple(keywords(labels))
    clips = load_split(DataConfig(root=root, words=words), "test", labels)
    rows = np.linspace(0, len(clips) - 1, min(limit, len(clips))).round().astype(np.int64)
    waves = np.asarray(clips.waves[rows], np.float32) / 32768.0  # (n, T)
    return waves, clips.targets[rows]


def export_int8(
    result: ExportResult,
    settings: ExportConfig,
    opener: Callable[[Path], Backend] = OnnxBackend,
) -> ExportResult:
    """Quantize the written float model and write it only when it passes the check: on probes,
    `audio` clips and held-out speech, each clip alone (as speechrnn-predict runs a file) and
    in batches, the int8 model's probabilities for a clip do not depend on its batch mates
    (within `tolerance`) and its accuracy falls by at most `max_accuracy_drop` either way.
    `opener` answers clips with an ONNX file (a stream step's: its per-clip rule)."""
    out = result.path.with_suffix(".int8.onnx")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    clips = probe_signals()
    if settings.audio:
        clips = np.concatenate([clips, real_clips(settings.audio, settings.max_clips)])
    targets = None
    if settings.heldout:
        held, targets = heldout_clips(settings.heldout, result.labels, settings.heldout_clips)
        clips = np.concatenate([held, clips])
        targets = np.concatenate([targets, np.full(len(clips) - len(held), -1)])
    try:
        quantize_int8(result.path, tmp)
        scored = compare(opener(result.path), opener(tmp), clips, targets)
        if not scored.batch_diff <= settings.tolerance:
            raise ExportError(
                f"{out}: not written: the int8 model's probabilities for a clip move by "
                f"{scored.batch_diff:.2e} with its batch mates (tolerance {settings.tolerance:.0e})"
            )
        drop = scored.accuracy_drop
        if drop is not None and drop > settings.max_accuracy_drop:
            raise ExportError(
                f"{out}: not written: int8 loses {100 * drop:.2f} accuracy points on "
                f"{settings.heldout} (max_accuracy_drop {settings.max_accuracy_drop})"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return dataclasses.replace(result, int8_path=out, int8=scored)
