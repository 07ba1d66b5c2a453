"""A causal model as predict and serve use it: per-clip answers from its steps, its operating
point, and live detections from audio in pieces."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE, SILENCE_PEAK
from speechrnn.errors import CheckpointError, ConfigError
from speechrnn.inference.backends import Backend, OnnxBackend, TorchBackend, open_session
from speechrnn.inference.decisions import Detection
from speechrnn.inference.listener import STREAM_FORMAT, Listener, OnnxStep, State, Step, TorchStep
from speechrnn.inference.operating_point import OperatingPoint, silence_rows
from speechrnn.inference.streaming import Detector, StreamConfig, smooth, window_starts
from speechrnn.labels import SILENCE, is_keyword, keywords
from speechrnn.metadata import DETECTOR_KEY


@dataclass(frozen=True)
class Listening:
    """A causal model's stream step and the operating point its detections use."""

    step: Step
    point: OperatingPoint
    stored: bool = False  # the point came from the model file (calibrated), not from options


def pick_step(probs: np.ndarray, labels: list[str]) -> np.ndarray:
    """(B, steps, C) -> (B, C): each clip's step where the keywords' probability peaks (numpy
    StackedLSTMClassifier.pick_step; without filler labels, where the top label peaks)."""
    keyword = np.array([is_keyword(x) for x in labels])  # (C,)
    fillers = not keyword.all()
    score = (probs * keyword).sum(-1) if fillers else probs.max(-1)  # (B, steps)
    return probs[np.arange(probs.shape[0]), score.argmax(axis=1)]


class StepBackend:
    """Per-clip answers of a stream step, as a causal checkpoint's forward gives them:
    (B, 16000) clips -> (B, classes), digital silence answered `_silence_`."""

    def __init__(self, step: Step) -> None:
        self.step, self.labels = step, step.labels

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        size = self.step.step_samples
        whole = batch[:, : batch.shape[1] // size * size]  # (B, steps * size)
        state = _batched(self.step.initial_state(), batch.shape[0])
        probs = pick_step(self.step(whole, state)[0], self.labels)  # (B, C)
        if SILENCE in self.labels:
            quiet = np.abs(batch).max(axis=1) < SILENCE_PEAK  # (B,)
            probs[quiet] = np.eye(len(self.labels), dtype=probs.dtype)[self.labels.index(SILENCE)]
        return probs


def _batched(state: State, batch: int) -> State:
    """One stream's state repeated for `batch` streams (h and c hold the batch on axis 1)."""
    axes = (0, 0, 1, 1)
    return tuple(np.repeat(s, batch, axis=a) for s, a in zip(state, axes, strict=True))


def open_model(path: Path, device: str, config: StreamConfig) -> tuple[Backend, Listening | None]:
    """The per-clip backend of any model file, and a causal model's Listening (None for a
    per-clip model): a stream ONNX file is answered from its steps, with no torch."""
    if path.suffix.lower() == ".onnx":
        session = open_session(path)
        if session.get_modelmeta().custom_metadata_map.get("format") != STREAM_FORMAT:
            return OnnxBackend(path, session), None
        step = OnnxStep(path, session)
        stored = step.metadata.get(DETECTOR_KEY)
        try:
            detector = None if stored is None else json.loads(stored)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{path}: unreadable detector settings") from None
        return StepBackend(step), listening(step, path, detector, config)
    backend = TorchBackend(path, device)
    if not backend.model.config.causal:
        return backend, None
    return backend, listening(TorchStep(backend.model), path, checkpoint_detector(path), config)


def listening(step: Step, path: Path, stored: object, config: StreamConfig) -> Listening:
    """The model's stored operating point (`stored`: its `detector` metadata, None when it has
    none), else every keyword at `config.threshold`, averaged over `config.average`."""
    seconds = step.step_samples / SAMPLE_RATE
    if stored is not None:
        point = OperatingPoint.from_metadata(stored, step.labels, str(path))
        if round(point.step_seconds * SAMPLE_RATE) != step.step_samples:
            raise CheckpointError(
                f"{path}: its detector steps every {point.step_seconds} s, the model every "
                f"{seconds} s"
            )
        return Listening(step, point, stored=True)
    if not 0.0 < config.threshold < 1.0:
        raise ConfigError(
            f"--detect-threshold must be between 0 and 1 (exclusive) for a causal model, "
            f"got {config.threshold}"
        )
    average = max(1, round(config.average / seconds))
    thresholds = dict.fromkeys(keywords(step.labels), config.threshold)
    return Listening(step, OperatingPoint(thresholds, average, seconds, config.suppress))


def checkpoint_detector(path: Path) -> object:
    """A checkpoint's `detector` mapping (standalone or Lightning); None when it has none."""
    from speechrnn.checkpoint import read_checkpoint

    raw = read_checkpoint(path)
    if isinstance(raw, dict) and isinstance(raw.get("speechrnn"), dict):
        raw = {**raw["speechrnn"], **raw}
    return raw.get(DETECTOR_KEY) if isinstance(raw, dict) else None


class LiveListener:
    """One live stream through a causal model: audio in pieces of any size -> its steps'
    posteriors -> the operating point's scores -> the shared Detector. Any cutting of the same
    audio gives the detections of the whole file at once."""

    def __init__(self, listening: Listening) -> None:
        self.point, self.labels = listening.point, listening.step.labels
        self.listener = Listener(listening.step)
        self.detector = Detector(self.labels, self.point.stream_config())
        self._recent = np.zeros((0, len(self.labels)), np.float32)  # (< average_steps, C)
        self._rows = 0  # rows handed to the detector: one per window of its grid
        self.smoothed: np.ndarray | None = None  # (C,) the newest averaged posteriors

    def feed(self, samples: np.ndarray) -> list[Detection]:
        """Take (T,) float32 samples at 16 kHz; return the detections they settle."""
        found = self.point.posteriors(self.detector.add_audio(samples))
        posteriors = self.listener.feed(samples)  # (n, C)
        if not posteriors.shape[0]:
            return found
        near = np.concatenate([self._recent, posteriors])  # (k + n, C)
        self.smoothed = smooth(near, self.point.average_steps)[-1].astype(np.float32)
        rows = self.point.scores(near, self.labels)[self._recent.shape[0] :]  # (n, C)
        self._recent = near[near.shape[0] - self.point.average_steps + 1 :]
        if self._rows == 0:  # the grid's first window ends before any step: silence
            rows = np.concatenate([silence_rows(1, self.labels), rows])
        return found + self._add(rows)

    def finish(self) -> list[Detection]:
        """The audio has ended: the windows past the last step say silence; the rest settles."""
        step = self.listener.step.step_samples
        count = window_starts(self.detector.samples, step).shape[0]
        found = self._add(silence_rows(count - self._rows, self.labels))
        return found + self.point.posteriors(self.detector.finish())

    def _add(self, rows: np.ndarray) -> list[Detection]:
        self._rows += rows.shape[0]
        return self.point.posteriors(self.detector.add_posteriors(rows))
