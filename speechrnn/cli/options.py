"""The shared command-line pieces of speechrnn-predict, -serve and -synth (argparse)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn, TypeVar

from speechrnn.audio import MAX_SECONDS
from speechrnn.errors import ConfigError
from speechrnn.inference.predict import Decisions, Predictor, load_model
from speechrnn.inference.streaming import StreamConfig
from speechrnn.settings import from_mapping

T = TypeVar("T")
CHECKPOINT_SUFFIXES = (".ckpt", ".pt")
RELEASED = "the released model shipped with speechrnn (speechrnn/models/, or $SPEECHRNN_MODELS)"
# Each settings dataclass's fields and the options (argparse dests) that set them.
DECISION_OPTIONS = {"top_k": "top_k", "threshold": "threshold", "max_seconds": "max_seconds"}
STREAM_OPTIONS = {
    "stride": "stride",
    "average": "average",
    "threshold": "detect_threshold",
    "suppress": "suppress",
    "batch_size": "batch_size",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are a ConfigError: one `error:` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see --help)")


def model_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A command line that names its model with -m/--model (speechrnn-predict, -serve)."""
    parser = OneLineParser(prog=prog, description=description, epilog=epilog)
    parser.add_argument(
        "-m",
        "--model",
        metavar="MODEL",
        help=f"checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) or exported ONNX model (.onnx); "
        f"default: {RELEASED}",
    )
    return parser


def is_model_file(name: str) -> bool:
    """Whether a command-line argument names a model file (by its suffix)."""
    return Path(name).suffix.lower() in (*CHECKPOINT_SUFFIXES, ".onnx")


def announce(predictor: Predictor) -> None:
    """The released model is named on stderr (`model: ...`); a model the user gave is not."""
    if predictor.source is not None and predictor.source.released:
        print(f"model: {predictor.source.description}", file=sys.stderr, flush=True)


def from_options(cls: type[T], args: argparse.Namespace, dests: Mapping[str, str]) -> T:
    """Settings dataclass `cls` from the options `dests` maps its fields to, checked by
    `from_mapping` (type, NaN, infinity, range): a bad value is a ConfigError naming its option."""
    values = {name: getattr(args, dest) for name, dest in dests.items()}
    names = {name: "--" + dest.replace("_", "-") for name, dest in dests.items()}
    return from_mapping(cls, values, "options", names)


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
        help=f"long audio: smoothed posterior to report a keyword; a causal model uses its "
        f"stored operating point when it has one (default {defaults.threshold})",
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
    """The Predictor the options of `add_predictor_options` ask for, each checked before the
    model is read; raises SpeechRNNError."""
    decide = from_options(Decisions, args, DECISION_OPTIONS)
    stream = from_options(StreamConfig, args, STREAM_OPTIONS)
    return load_model(
        args.model, args.device, decide.top_k, decide.threshold, stream, decide.max_seconds
    )
