"""ONNX export of a causal model's stream step (audio and state in, posteriors and state out),
parity-checked against torch over several chunkings before it is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speechrnn.audio import SAMPLE_RATE
from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import ConfigError, ExportError
from speechrnn.inference.export import ExportResult, probe_signals, write_onnx
from speechrnn.inference.listener import STATE, STREAM_FORMAT, Listener, OnnxStep
from speechrnn.inference.listening import StepBackend, checkpoint_detector
from speechrnn.inference.operating_point import OperatingPoint
from speechrnn.metadata import DETECTOR_KEY, onnx_properties
from speechrnn.model import StackedLSTMClassifier, StreamState
from speechrnn.version import __version__

CHUNKS = (160, 333, 480, 1600, 16000)  # samples per piece fed in the parity check
OUTPUTS = ("probabilities", *(f"{name}_out" for name in STATE))


class StreamGraph(nn.Module):
    """The exported graph, one step: (B, step_samples) audio, samples, frames, h, c ->
    (B, 1, classes) probabilities and the next samples, frames, h, c. One step per call keeps
    every shape but the batch static (torch.export unrolls the LSTM over a known length)."""

    def __init__(self, model: StackedLSTMClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        audio: torch.Tensor,
        samples: torch.Tensor,
        frames: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        state = StreamState(samples, frames, h, c)
        logits, after = self.model.stream(audio, state)  # (B, 1, classes)
        return (logits.softmax(dim=-1), *after)


def export_stream(
    ckpt_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tolerance: float = 1e-4,
    detector: dict[str, Any] | None = None,
) -> tuple[Path, float]:
    """Export a causal checkpoint's step to ONNX; write it only when every chunking of the
    probe audio streams through onnxruntime within `tolerance` of torch's whole-file posteriors.
    `detector`: an operating point's plain values (OperatingPoint.to_metadata()), stored as
    JSON under DETECTOR_KEY. Returns the path and the largest difference found."""
    out = Path(out)
    model = load_checkpoint(ckpt_path, "cpu")
    if not model.config.causal:
        raise ConfigError(f"{ckpt_path}: not a causal model (model.causal=false): no stream step")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        metadata = stream_metadata(model, Path(ckpt_path))
        if detector is not None:
            metadata[DETECTOR_KEY] = json.dumps(detector)
        _write_graph(model, tmp, metadata)
        diff = max_stream_diff(model, OnnxStep(tmp))
        if not diff <= tolerance:
            raise ExportError(
                f"{out}: not written: the ONNX stream differs from torch by {diff:.2e} "
                f"(tolerance {tolerance:.0e})"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, diff


def is_causal(ckpt_path: str | os.PathLike[str]) -> bool:
    """Whether the checkpoint holds a listener (model.causal): it exports a stream step."""
    return load_checkpoint(ckpt_path, "cpu").config.causal


def export_listener(
    ckpt_path: str | os.PathLike[str], out: str | os.PathLike[str], tolerance: float
) -> tuple[ExportResult, OperatingPoint | None]:
    """speechrnn-export of a causal checkpoint: its stream step, carrying the checkpoint's
    operating point (checked) when it has one. Returns the export (`clips`: the probes
    streamed) and the operating point written."""
    stored = checkpoint_detector(Path(ckpt_path))
    labels = load_checkpoint(ckpt_path, "cpu").labels
    point = None if stored is None else OperatingPoint.from_metadata(stored, labels, str(ckpt_path))
    detector = None if point is None else point.to_metadata()
    path, diff = export_stream(ckpt_path, out, tolerance, detector)
    return ExportResult(path, list(labels), diff, len(probe_signals())), point


def stream_clips(path: Path) -> StepBackend:
    """Per-clip answers of a stream ONNX file (what the int8 check compares)."""
    return StepBackend(OnnxStep(path))


def stream_metadata(model: StackedLSTMClassifier, ckpt: Path) -> dict[str, str]:
    """The model's ONNX metadata in STREAM_FORMAT, plus what a streamer needs under `stream`:
    step size, state shapes (batch axis left out) and the stem frames' initial value."""
    initial = model.initial_state(1)
    shapes = {name: _unbatched(name, tensor) for name, tensor in zip(STATE, initial, strict=True)}
    fill = float(initial.frames.flatten()[0]) if initial.frames.numel() else 0.0
    stream = {"step_samples": model.step_samples, "state": shapes, "frames_fill": fill}
    props = onnx_properties(
        model.metadata(),
        sample_rate=str(SAMPLE_RATE),
        source_checkpoint=ckpt.name,
        speechrnn_version=__version__,
    )
    return {**props, "format": STREAM_FORMAT, "stream": json.dumps(stream)}


def max_stream_diff(model: StackedLSTMClassifier, step: OnnxStep) -> float:
    """Largest |p_onnx - p_torch| over the probes streamed in every CHUNKS size."""
    audio = probe_signals().reshape(-1)  # (12 s,)
    with torch.inference_mode():
        whole = model.frame_logits(torch.from_numpy(audio)[None]).softmax(dim=-1)[0].numpy()
    worst = 0.0
    for size in CHUNKS:
        listener = Listener(step)
        got = np.concatenate(
            [listener.feed(audio[i : i + size]) for i in range(0, audio.size, size)]
        )
        worst = max(worst, float(np.abs(got - whole).max()))
    return worst


def _unbatched(name: str, tensor: torch.Tensor) -> list[int]:
    shape = list(tensor.shape)
    del shape[1 if name in ("h", "c") else 0]
    return shape


def _write_graph(model: StackedLSTMClassifier, path: Path, metadata: dict[str, str]) -> None:
    """One step, dynamic in the batch: (B, step_samples) audio and the state in and out."""
    state = model.initial_state(2)
    audio = torch.zeros(2, model.step_samples)  # (B, step_samples)
    batch = torch.export.Dim("batch")
    shapes = ({0: batch}, {0: batch}, {0: batch}, {1: batch}, {1: batch})
    inputs = ["audio", *STATE]
    write_onnx(StreamGraph(model), (audio, *state), shapes, inputs, list(OUTPUTS), path, metadata)
