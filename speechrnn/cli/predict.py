"""speechrnn-predict: the command line over load_model and Predictor (ONNX needs no torch)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator

from speechrnn.cli.options import (
    add_predictor_options,
    announce,
    from_options,
    is_model_file,
    model_parser,
    predictor_from_args,
)
from speechrnn.console import error_line, guarded
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError
from speechrnn.inference.inputs import MAX_FILES, InputLimits, expand_inputs
from speechrnn.inference.predict import json_record


def build_parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "speechrnn-predict",
        "Recognise the spoken command in audio files; scan long audio for keywords. "
        "speechrnn-predict AUDIO... uses the released model shipped with speechrnn; "
        "speechrnn-predict MODEL AUDIO... (a first argument ending in .onnx, .pt or .ckpt) "
        "or -m MODEL uses that model.",
        "Exit status: 0 all files answered, 1 some file failed, 2 bad arguments or model, "
        "130 interrupted.",
    )
    parser.usage = "%(prog)s [-m MODEL] [options] [MODEL] AUDIO [AUDIO ...]"
    parser.add_argument(
        "audio",
        nargs="+",
        metavar="AUDIO",
        help="an optional model file first, then audio files (any format soundfile reads), "
        "directories (searched recursively for audio files) or quoted glob patterns",
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


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-predict: print one answer per audio file; errors are one line each on stderr."""
    # Before torch loads OpenMP: idle workers sleep rather than spin, so a busy machine does not
    # stall every forward pass (measured: 1.7 s instead of 6 ms per clip on 2 shared cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        with _native_stderr_muted():
            return _run(argv)
    except KeyboardInterrupt:
        error_line("interrupted")
        return ExitCode.INTERRUPTED


def _run(argv: list[str] | None) -> int:
    try:
        args = model_first(build_parser().parse_args(argv))
        limits = from_options(InputLimits, args, {"max_files": "max_files"})
        model = predictor_from_args(args)
    except SpeechRNNError as exc:
        error_line(str(exc))
        return ExitCode.USAGE
    announce(model)
    failed = 0
    try:
        for name, outcome in model.predict_files(expand_inputs(args.audio, limits.max_files)):
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


def model_first(args: argparse.Namespace) -> argparse.Namespace:
    """`MODEL AUDIO...` (the older form) when no -m is given and the first of several arguments
    is a model file; a model file alone is a usage error."""
    if args.model is None and is_model_file(args.audio[0]):
        if len(args.audio) == 1:
            raise ConfigError(f"{args.audio[0]} is a model file: name the audio after it")
        args.model, args.audio = args.audio[0], args.audio[1:]
    return args


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
