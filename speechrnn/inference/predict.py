"""Single-file inference: load_model (checkpoint or ONNX), Predictor, speechrnn-predict CLI."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from speechrnn.audio import MAX_SECONDS, SAMPLE_RATE, decode_audio, fit_clip, read_audio, resample
from speechrnn.console import error_line, guarded, shown
from speechrnn.errors import AudioError, ConfigError, SpeechRNNError
from speechrnn.inference.backends import Backend, open_backend
from speechrnn.inference.decisions import CLIP_SECONDS, Prediction, decide
from speechrnn.inference.inputs import MAX_FILES, expand_inputs
from speechrnn.inference.streaming import StreamConfig, detect, iter_windows

Source = str | os.PathLike[str]
Outcome = tuple[str, Prediction | SpeechRNNError]


class Predictor:
    """A loaded model plus the decision settings; the CLI prints what `predict` returns."""

    def __init__(
        self,
        backend: Backend,
        top_k: int = 1,
        threshold: float = 0.0,
        stream: StreamConfig | None = None,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        if top_k < 1:
            raise ConfigError(f"top-k must be at least 1, got {top_k}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
        if max_seconds <= 0:
            raise ConfigError(f"max-seconds must be positive, got {max_seconds}")
        self.backend = backend
        self.labels = backend.labels
        self.top_k, self.threshold = top_k, threshold
        self.stream = stream or StreamConfig()
        self.max_seconds = max_seconds

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(B, 16000) float32 clips -> (B, classes)."""
        return self.backend(batch)

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
        if duration > CLIP_SECONDS:
            cfg = self.stream
            windows = iter_windows(wave, cfg.hop, cfg.batch_size)
            posteriors = np.concatenate([self.probabilities(b) for b in windows])  # (N, C)
            detections = detect(wave, posteriors, self.labels, cfg)
        return Prediction(name, label, probability, top, round(duration, 4), detections)


def load_model(
    path: Source,
    device: str = "cpu",
    top_k: int = 1,
    threshold: float = 0.0,
    stream: StreamConfig | None = None,
    max_seconds: float = MAX_SECONDS,
) -> Predictor:
    """A Predictor for a checkpoint (.ckpt/.pt, run by torch) or an exported .onnx model."""
    return Predictor(open_backend(path, device), top_k, threshold, stream, max_seconds)


def model_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A command line that takes a MODEL first (speechrnn-predict, speechrnn-serve)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    parser.add_argument("model", help="checkpoint (.ckpt, .pt) or exported ONNX model (.onnx)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "speechrnn-predict",
        "Recognise the spoken command in audio files; scan long audio for keywords.",
        "Exit status: 0 all files answered, 1 some file failed, 2 bad arguments or model.",
    )
    parser.add_argument(
        "audio",
        nargs="+",
        help="audio files (any format soundfile reads), directories (searched recursively "
        "for audio files) or quoted glob patterns",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line per file")
    parser.add_argument(
        "--max-files",
        type=int,
        default=MAX_FILES,
        metavar="N",
        help=f"refuse a directory or glob that expands to more files (default {MAX_FILES})",
    )
    add_predictor_options(parser)
    return parser


def add_predictor_options(parser: argparse.ArgumentParser) -> None:
    """The decision, scanning and device options (speechrnn-predict and speechrnn-serve)."""
    defaults = StreamConfig()
    add = parser.add_argument
    add("--top-k", type=int, default=1, metavar="K", help="also show the K most likely labels")
    add(
        "--threshold",
        type=float,
        default=0.0,
        metavar="P",
        help="answer _unknown_ when the best probability is below P (default 0)",
    )
    add(
        "--stride",
        type=float,
        default=defaults.stride,
        metavar="S",
        help=f"long audio: seconds between 1 s windows (default {defaults.stride})",
    )
    add(
        "--average",
        type=float,
        default=defaults.average,
        metavar="S",
        help=f"long audio: posterior averaging window in seconds (default {defaults.average})",
    )
    add(
        "--detect-threshold",
        type=float,
        default=defaults.threshold,
        metavar="P",
        help=f"long audio: smoothed posterior to report a keyword (default {defaults.threshold})",
    )
    add(
        "--suppress",
        type=float,
        default=defaults.suppress,
        metavar="S",
        help=f"long audio: no new detection within S seconds of one (default {defaults.suppress})",
    )
    add(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        metavar="N",
        help=f"clips or windows per forward pass (default {defaults.batch_size})",
    )
    add(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        metavar="S",
        help=f"refuse longer audio, judged from the header (default {MAX_SECONDS:g})",
    )
    add("--device", default="cpu", help="checkpoints only: cpu, cuda, cuda:N or auto (default cpu)")


def predictor_from_args(args: argparse.Namespace) -> Predictor:
    """load_model with the options of `add_predictor_options`; raises SpeechRNNError."""
    stream = StreamConfig(
        args.stride, args.average, args.detect_threshold, args.suppress, args.batch_size
    )
    return load_model(args.model, args.device, args.top_k, args.threshold, stream, args.max_seconds)


def json_record(name: str, outcome: Prediction | SpeechRNNError) -> dict[str, object]:
    """One file's answer as `speechrnn-predict --json` prints it and `POST /api/predict` returns."""
    if isinstance(outcome, SpeechRNNError):
        return {"file": name, "error": str(outcome)}
    return outcome.to_dict()


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-predict: print one answer per audio file; errors are one line each on stderr."""
    args = build_parser().parse_args(argv)
    # Before torch loads OpenMP: idle workers sleep rather than spin, so a busy machine does not
    # stall every forward pass (measured: 1.7 s instead of 6 ms per clip on 2 shared cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        with _native_stderr_muted():
            return _run(args)
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130


def _run(args: argparse.Namespace) -> int:
    try:
        if args.max_files < 1:
            raise ConfigError(f"max-files must be at least 1, got {args.max_files}")
        model = predictor_from_args(args)
    except SpeechRNNError as exc:
        error_line(str(exc))
        return 2
    failed = 0
    try:
        for name, outcome in model.predict_files(expand_inputs(args.audio, args.max_files)):
            if isinstance(outcome, SpeechRNNError):
                failed += 1
                error_line(str(outcome))
            if args.json:
                _emit(json.dumps(json_record(name, outcome)))
            elif not isinstance(outcome, SpeechRNNError):
                _emit(str(outcome))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 1 if failed else 0


@contextlib.contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """Drop what C libraries write to fd 2 (libmpg123 notes on bad MP3s); keep Python's stderr."""
    target = 2  # where C code writes
    try:
        saved = os.dup(target)
    except OSError:  # no stderr at all: nothing to mute
        yield
        return
    sys.stderr.flush()
    original = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, target)
    os.close(devnull)
    sys.stderr = open(saved, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original
        os.dup2(saved, target)
        os.close(saved)


def _emit(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
