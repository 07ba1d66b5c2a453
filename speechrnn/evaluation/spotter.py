"""A model as streaming evaluation hears it: per-clip answers, its detector, its shipped point."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE
from speechrnn.checkpoint import read_checkpoint
from speechrnn.console import counting
from speechrnn.errors import CheckpointError
from speechrnn.evaluation.scans import Scan, StepScan, WindowScan
from speechrnn.evaluation.spotting import posteriors_of
from speechrnn.inference.backends import MAX_ONNX_BYTES, Backend, TorchBackend, open_backend
from speechrnn.inference.listener import STREAM_FORMAT, Listener, OnnxStep, Step, TorchStep
from speechrnn.inference.operating_point import OperatingPoint
from speechrnn.inference.streaming import StreamConfig
from speechrnn.labels import SILENCE, UNKNOWN
from speechrnn.metadata import DETECTOR_KEY
from speechrnn.model import SILENCE_PEAK

PIECE_SECONDS = 30.0  # audio fed to a listener at once: one call of a torch step


@dataclass(frozen=True)
class Listening:
    """A causal model's stream step and the operating point its detections use."""

    step: Step
    point: OperatingPoint


@dataclass(frozen=True)
class Spotter:
    """A model as speechrnn-eval scores it; `listening` is None for a per-clip model."""

    backend: Backend  # (B, 16000) clips -> (B, C) probabilities
    stream: StreamConfig
    listening: Listening | None = None
    shipped: bool = False  # whether the model file carries the listener's operating point

    def scan(self, wave: np.ndarray, progress: bool = True) -> Scan:
        """The detector over (T,) `wave`: the listener at its operating point's smoothing and
        suppression, else speechrnn-predict's sliding windows with the `stream` settings."""
        labels = list(self.backend.labels)
        if self.listening is None:
            posteriors = posteriors_of(wave, self.backend, self.stream)  # (N, C)
            return WindowScan(wave, posteriors, labels, self.stream)
        posteriors = step_posteriors(self.listening.step, wave, progress)  # (S, C)
        return StepScan(wave, posteriors, labels, self.listening.point)


def open_spotter(path: str | Path, device: str, stream: StreamConfig) -> Spotter:
    """Any model file: a causal checkpoint or stream ONNX listens (at the operating point it
    carries, else one from `stream`), any other model scans 1 s windows."""
    path = Path(path)
    if _is_stream_onnx(path):
        step: Step = OnnxStep(path)
        stored = step.session.get_modelmeta().custom_metadata_map.get(DETECTOR_KEY)
        meta = None if stored is None else _json(stored, path)
        return _listening(StepClips(step), step, path, meta, stream)
    backend = open_backend(path, device)
    if not (isinstance(backend, TorchBackend) and backend.model.config.causal):
        return Spotter(backend, stream)
    raw = read_checkpoint(path)
    meta = raw.get(DETECTOR_KEY) if isinstance(raw, dict) else None
    return _listening(backend, TorchStep(backend.model), path, meta, stream)


def step_posteriors(step: Step, wave: np.ndarray, progress: bool = True) -> np.ndarray:
    """(T,) audio through a fresh Listener in PIECE_SECONDS pieces -> (T // step, C) posteriors."""
    piece = int(PIECE_SECONDS * SAMPLE_RATE) // step.step_samples * step.step_samples
    listener = Listener(step, max_steps=piece // step.step_samples)
    out = [np.zeros((0, len(step.labels)), np.float32)]
    with counting("listening", wave.shape[0], progress, transient=True) as advance:
        for lo in range(0, wave.shape[0], piece):
            out.append(listener.feed(wave[lo : lo + piece]))  # (n, C)
            advance(min(piece, wave.shape[0] - lo))
    return np.concatenate(out)


def step_seconds(step: Step) -> float:
    """Seconds of audio per step of a listener."""
    return step.step_samples / SAMPLE_RATE


class StepClips:
    """Per-clip answers of a stream ONNX step by the causal model's per-clip rule: a fresh
    stream per clip, its step where the keywords' probability peaks, `_silence_` for a clip
    without signal."""

    def __init__(self, step: OnnxStep) -> None:
        self.step, self.labels, self.session = step, step.labels, step.session
        self._keyword = np.array([k not in (SILENCE, UNKNOWN) for k in self.labels])  # (C,)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.zeros((batch.shape[0], len(self.labels)), np.float32)  # (B, C)
        listener = Listener(self.step)
        for i, clip in enumerate(batch):
            if SILENCE in self.labels and np.abs(clip).max() < SILENCE_PEAK:
                out[i, self.labels.index(SILENCE)] = 1.0
                continue
            listener.reset()
            probs = listener.feed(clip)  # (S, C)
            fillers = not self._keyword.all()
            score = probs[:, self._keyword].sum(1) if fillers else probs.max(1)  # (S,)
            out[i] = probs[int(score.argmax())]
        return out


def _listening(
    backend: Backend, step: Step, path: Path, meta: object, stream: StreamConfig
) -> Spotter:
    """The model's stored operating point, checked, else every keyword at `stream`'s settings."""
    seconds = step_seconds(step)
    if meta is None:
        keywords = [k for k in step.labels if k not in (SILENCE, UNKNOWN)]
        average = max(1, round(stream.average / seconds))
        thresholds = dict.fromkeys(keywords, min(max(stream.threshold, 1e-9), 1 - 1e-9))
        point = OperatingPoint(thresholds, average, seconds, stream.suppress)
        return Spotter(backend, stream, Listening(step, point))
    point = OperatingPoint.from_metadata(meta, step.labels, str(path))
    if round(point.step_seconds * SAMPLE_RATE) != step.step_samples:
        raise CheckpointError(
            f"{path}: its detector steps every {point.step_seconds:g} s, the model every "
            f"{seconds:g} s"
        )
    return Spotter(backend, stream, Listening(step, point), shipped=True)


def _is_stream_onnx(path: Path) -> bool:
    """Whether `path` is an ONNX file whose metadata says it is a listener's stream step."""
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return False
    if path.stat().st_size > MAX_ONNX_BYTES:
        return False  # open_backend refuses it in one line
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # unreadable: open_backend says why in one line
        return False
    return any(p.key == "format" and p.value == STREAM_FORMAT for p in model.metadata_props)


def _json(text: str, path: Path) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path}: unreadable detector settings (not JSON)") from None
