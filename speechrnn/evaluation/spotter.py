"""A model as streaming evaluation hears it: per-clip answers, its detector, its shipped point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE
from speechrnn.console import counting
from speechrnn.evaluation.scans import Scan, StepScan, WindowScan
from speechrnn.evaluation.spotting import posteriors_of
from speechrnn.inference.backends import Backend
from speechrnn.inference.listener import Listener, Step
from speechrnn.inference.listening import Listening, open_model
from speechrnn.inference.streaming import StreamConfig

PIECE_SECONDS = 30.0  # audio fed to a listener at once: one call of a torch step


@dataclass(frozen=True)
class Spotter:
    """A model as speechrnn-eval scores it; `listening` is None for a per-clip model."""

    backend: Backend  # (B, 16000) clips -> (B, C) probabilities
    stream: StreamConfig
    listening: Listening | None = None

    @property
    def shipped(self) -> bool:
        """Whether the model file carries the listener's operating point."""
        return self.listening is not None and self.listening.stored

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
    backend, listening = open_model(Path(path), device, stream)
    return Spotter(backend, stream, listening)


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
