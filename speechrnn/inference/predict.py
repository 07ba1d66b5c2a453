"""Single-file inference: load_model (checkpoint or ONNX) and the Predictor that answers files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.audio import MAX_SECONDS, SAMPLE_RATE, decode_audio, fit_clip, read_audio, resample
from speechrnn.console import shown
from speechrnn.errors import AudioError, SpeechRNNError
from speechrnn.inference.backends import Backend
from speechrnn.inference.decisions import CLIP_SECONDS, Prediction, decide
from speechrnn.inference.listening import Listening, LiveListener, open_model
from speechrnn.inference.released import find_release
from speechrnn.inference.streaming import Scanner, StreamConfig, detect, iter_windows
from speechrnn.settings import bounded, check_ranges
from speechrnn.validation import MAX_LABELS

Source = str | os.PathLike[str]
Outcome = tuple[str, Prediction | SpeechRNNError]


MAX_SECONDS_CEILING = 86_400.0  # --max-seconds may raise the 1 h default up to a day


@dataclass(frozen=True)
class Decisions:
    """How a Predictor answers: the top-k labels, the `_unknown_` threshold, the longest audio."""

    top_k: int = bounded(1, 1, MAX_LABELS)
    threshold: float = bounded(0.0, 0.0, 1.0)
    max_seconds: float = bounded(MAX_SECONDS, 0.01, MAX_SECONDS_CEILING, " seconds")

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class ModelSource:
    """The file a model was loaded from and how to name it to a user."""

    path: Path
    description: str
    released: bool = False


class Predictor:
    """A loaded model plus the decision settings; the CLI prints what `predict` returns."""

    def __init__(
        self,
        backend: Backend,
        top_k: int = 1,
        threshold: float = 0.0,
        stream: StreamConfig | None = None,
        max_seconds: float = MAX_SECONDS,
        source: ModelSource | None = None,
        listening: Listening | None = None,
    ) -> None:
        decisions = Decisions(top_k, threshold, max_seconds)
        self.backend = backend
        self.source = source
        self.labels = backend.labels
        self.top_k, self.threshold = decisions.top_k, decisions.threshold
        self.stream = stream or StreamConfig()
        self.max_seconds = decisions.max_seconds
        self.listening = listening  # a causal model's step and operating point

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(B, 16000) float32 clips -> (B, classes)."""
        return self.backend(batch)

    def live(self) -> LiveListener | Scanner:
        """A new live stream: a causal model's listener, else sliding windows."""
        if self.listening is not None:
            return LiveListener(self.listening)
        return Scanner(self.probabilities, self.labels, self.stream)

    def predict(self, source: Source | np.ndarray, sample_rate: int = SAMPLE_RATE) -> Prediction:
        """Classify a file (any format) or a float waveform, (T,) or (T, channels).

        Long audio is also scanned for keywords. Raises the error the CLI would print.
        """
        if isinstance(source, np.ndarray):
            samples = np.asarray(source, dtype=np.float32)
            mono = samples.mean(axis=1) if samples.ndim == 2 else samples.reshape(-1)  # (T,)
            if mono.size == 0 or not np.isfinite(mono).all():
                raise AudioError("<array>: empty, or holds NaN or infinite samples")
            wave = resample(np.ascontiguousarray(mono), sample_rate)
            return self._answer("<array>", wave, self.probabilities(fit_clip(wave)[None])[0])
        ((_, outcome),) = self.predict_files([source])
        if isinstance(outcome, SpeechRNNError):
            raise outcome
        return outcome

    def predict_bytes(self, data: bytes, name: str) -> Prediction:
        """Classify a file held in memory (an upload) exactly as `predict` classifies a file."""
        try:
            wave = decode_audio(data, name, max_seconds=self.max_seconds)
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            raise AudioError(f"{name}: cannot read ({type(exc).__name__}: {exc})") from None
        ((_, outcome),) = self._flush([(name, wave)])
        return outcome

    def predict_files(
        self, sources: Iterable[Source | SpeechRNNError], batch_size: int | None = None
    ) -> Iterator[Outcome]:
        """(name, Prediction or the error) per source, in order; clips are batched together.

        Errors already in `sources` (from `expand_inputs`) pass through in their place.
        """
        batch_size = batch_size or self.stream.batch_size
        pending: list[tuple[str, np.ndarray | SpeechRNNError]] = []
        for source in sources:
            name, wave = self._decode(source)
            pending.append((name, wave))
            long = isinstance(wave, np.ndarray) and wave.shape[0] > CLIP_SECONDS * SAMPLE_RATE
            if long or len(pending) >= batch_size:  # at most one long recording held at once
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def _decode(self, source: Source | SpeechRNNError) -> tuple[str, np.ndarray | SpeechRNNError]:
        if isinstance(source, SpeechRNNError):
            return str(source).split(": ", 1)[0], source
        path, name = Path(source), shown(str(source))
        try:
            return name, read_audio(path, max_seconds=self.max_seconds)
        except SpeechRNNError as exc:
            return name, exc
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            return name, AudioError(f"{name}: cannot read ({type(exc).__name__}: {exc})")

    def _flush(self, pending: list[tuple[str, np.ndarray | SpeechRNNError]]) -> Iterator[Outcome]:
        waves = [(name, w) for name, w in pending if isinstance(w, np.ndarray)]
        clips = np.stack([fit_clip(w) for _, w in waves]) if waves else None  # (B, 16000)
        probs = iter(self.probabilities(clips)) if clips is not None else iter(())
        for name, item in pending:
            if isinstance(item, SpeechRNNError):
                yield name, item
            else:
                yield name, self._answer(name, item, next(probs))

    def _answer(self, name: str, wave: np.ndarray, probs: np.ndarray) -> Prediction:
        label, probability, top = decide(probs, self.labels, self.top_k, self.threshold)
        duration = wave.shape[0] / SAMPLE_RATE
        detections = None
        if duration > CLIP_SECONDS and self.listening is not None:
            live = LiveListener(self.listening)
            detections = live.feed(wave) + live.finish()
        elif duration > CLIP_SECONDS:
            cfg = self.stream
            windows = iter_windows(wave, cfg.hop, cfg.batch_size)
            posteriors = np.concatenate([self.probabilities(b) for b in windows])  # (N, C)
            detections = detect(wave, posteriors, self.labels, cfg)
        return Prediction(name, label, probability, top, round(duration, 4), detections)


def load_model(
    path: Source | None = None,
    device: str = "cpu",
    top_k: int = 1,
    threshold: float = 0.0,
    stream: StreamConfig | None = None,
    max_seconds: float = MAX_SECONDS,
) -> Predictor:
    """A Predictor for a checkpoint (.ckpt/.pt, run by torch) or an exported .onnx model; with
    no path, for the released model shipped in the package (its int8 ONNX file, no torch)."""
    Decisions(top_k, threshold, max_seconds)  # bad settings are refused before the model is read
    source = model_source(path)
    stream = stream or StreamConfig()
    backend, listening = open_model(source.path, device, stream)
    return Predictor(backend, top_k, threshold, stream, max_seconds, source, listening)


def model_source(path: Source | None) -> ModelSource:
    """`path` named as given, or the released model when it is None (CheckpointError when the
    package holds none)."""
    if path is not None:
        return ModelSource(Path(path), shown(str(path)))
    release = find_release()
    return ModelSource(release.onnx, release.describe(), released=True)


def json_record(name: str, outcome: Prediction | SpeechRNNError) -> dict[str, object]:
    """One file's answer as `speechrnn-predict --json` prints it and `POST /api/predict` returns."""
    if isinstance(outcome, SpeechRNNError):
        return {"file": name, "error": str(outcome)}
    return outcome.to_dict()
