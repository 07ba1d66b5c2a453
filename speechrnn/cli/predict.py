"""speechrnn-predict: the command line over load_model and Predictor (ONNX needs no torch)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator

from speechrnn.audio import MAX_SECONDS
from speechrnn.console import error_line, guarded
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError
from speechrnn.inference.inputs import MAX_FILES, expand_inputs
from speechrnn.inference.predict import Predictor, json_record, load_model
from speechrnn.inference.streaming import StreamConfig


def model_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A command line that takes a MODEL first (speechrnn-predict, speechrnn-serve)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    parser.add_argument("model", help="checkpoint (.ckpt, .pt) or exported ONNX model (.onnx)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "speechrnn-predict",
        "Recognise the spoken command in audio files; scan long audio for keywords.",
        "Exit status: 0 all files answered, 1 some file failed, 2 bad arguments or model, "
        "130 interrupted.",
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
        return ExitCode.INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    try:
        if args.max_files < 1:
            raise ConfigError(f"max-files must be at least 1, got {args.max_files}")
        model = predictor_from_args(args)
    except SpeechRNNError as exc:
        error_line(str(exc))
        return ExitCode.USAGE
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
        return ExitCode.FAILED
    return ExitCode.FAILED if failed else ExitCode.OK


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
