"""speechrnn-enroll: teach a model a new word from a few recorded takes (argparse)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from speechrnn.audio import read_audio
from speechrnn.cli.options import CHECKPOINT_SUFFIXES, OneLineParser, from_options
from speechrnn.console import error_line, guarded, shown
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError, exit_code
from speechrnn.inference.inputs import expand_inputs
from speechrnn.inference.released import find_release
from speechrnn.inference.takes import TakeError, TakeLimits, Takes, find_takes

if TYPE_CHECKING:
    from speechrnn.training.enroll import EnrollSettings

SETTINGS = {"false_accepts": "false_accepts", "seed": "seed"}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="speechrnn-enroll",
        description="Teach a model a new word from 5 to 10 takes of it, in a minute or two on a "
        "CPU: the model's classes stay as they were, the word is added. One recording holds "
        "several takes with pauses between them; several recordings hold one take each.",
        epilog="Exit status: 0 taught, 1 unusable takes, 2 bad arguments or model, "
        "130 interrupted.",
    )
    add = parser.add_argument
    add("word", help="the new label, e.g. lights (letters, digits, ' and -)")
    add(
        "takes",
        nargs="+",
        metavar="TAKES",
        help="recordings of the word in any format soundfile reads: files, directories or "
        "quoted glob patterns",
    )
    add(
        "-m",
        "--model",
        metavar="CKPT",
        help="the checkpoint to teach (.ckpt, .pt); default: the float weights of the released "
        "model shipped with speechrnn",
    )
    add("-o", "--out", metavar="DIR", help="where the new model goes (default: ./speechrnn-WORD)")
    add("--min-takes", type=int, default=TakeLimits().min_takes, metavar="N", help="(5)")
    add(
        "--false-accepts",
        type=float,
        default=0.005,
        metavar="P",
        help="the share of held-out negatives the word may take at the detector's threshold "
        "(0.005)",
    )
    add("--seed", type=int, default=0, help="seeds the augmentation and the fit (0)")
    add("--json", action="store_true", help="print what was taught and measured as JSON")
    return parser


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-enroll: find the takes, teach the word, write the new model."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as speechrnn-predict does
    try:
        args = build_parser().parse_args(argv)
        limits = from_options(TakeLimits, args, {"min_takes": "min_takes"})
        weights, description = base_weights(args.model)
        from speechrnn.training.enroll import EnrollSettings

        settings = from_options(EnrollSettings, args, SETTINGS)
    except SpeechRNNError as exc:
        error_line(str(exc))
        return ExitCode.USAGE
    recordings, failed = [], False
    for entry in expand_inputs(args.takes):
        try:
            if isinstance(entry, SpeechRNNError):
                raise entry
            recordings.append((shown(str(entry)), read_audio(entry)))
        except SpeechRNNError as exc:
            error_line(str(exc))
            failed = True
    try:
        takes = find_takes(recordings, limits) if not failed else None
    except TakeError as exc:
        for problem in exc.problems:
            error_line(problem)
        return ExitCode.FAILED
    if takes is None:
        return ExitCode.FAILED
    return _teach(args, weights, description, takes, settings)


def _teach(
    args: argparse.Namespace,
    weights: Path,
    description: str,
    takes: Takes,
    settings: EnrollSettings,
) -> int:
    from speechrnn.training.enroll import enroll

    out = Path(args.out) if args.out else Path(f"speechrnn-{args.word.strip().replace(' ', '_')}")
    quiet = args.json
    log = (lambda _line: None) if quiet else (lambda line: print(line, flush=True))
    log(f"model: {description}")
    try:
        taught = enroll(weights, args.word, takes, out, settings, log=log)
    except SpeechRNNError as exc:
        error_line(str(exc))
        return exit_code(exc)
    if quiet:
        print(json.dumps(taught.to_dict()))
    else:
        print(f"wrote {taught.checkpoint} and {taught.onnx} ({' '.join(taught.labels)})")
        print(f"try it: speechrnn-predict -m {taught.onnx} AUDIO")
    return ExitCode.OK


def base_weights(model: str | None) -> tuple[Path, str]:
    """The checkpoint to teach and how to name it: `model`, or the released model's weights."""
    if model is None:
        release = find_release()
        return release.weights, f"{release.describe()}, weights {release.weights.name}"
    path = Path(model)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ConfigError(
            f"{shown(model)}: only a checkpoint (.ckpt, .pt) can learn a word; give the one "
            "the model was exported from"
        )
    if not path.is_file():
        raise ConfigError(f"{shown(model)}: checkpoint not found")
    return path, shown(model)


if __name__ == "__main__":
    sys.exit(main())
