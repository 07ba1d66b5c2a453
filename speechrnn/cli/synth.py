"""speechrnn-synth: write the offline espeak-ng corpus in GSC layout (argparse)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from speechrnn.console import Terminated, error_line, guarded
from speechrnn.data.staging import read_marker
from speechrnn.data.synth.writer import DEFAULT_SPEAKERS, synthesize
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError, exit_code


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-synth OUT_DIR [--words yes,no,...] [--speakers N] [--seed S] [--jobs J]."""
    try:
        args = _parser().parse_args(argv)
        words = [w.strip() for w in args.words.split(",") if w.strip()] if args.words else None
        existed = read_marker(args.out_dir) is not None
        start = time.perf_counter()
        out = synthesize(args.out_dir, words, args.speakers, args.seed, args.jobs)
        print(_summary(out, existed, time.perf_counter() - start))
        return ExitCode.OK
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except SpeechRNNError as exc:
        error_line(str(exc))
        return exit_code(exc)
    except KeyboardInterrupt:
        error_line("interrupted; no complete corpus was written")
        return ExitCode.INTERRUPTED
    except Terminated:
        error_line("terminated (SIGTERM); no complete corpus was written")
        return ExitCode.TERMINATED


def _describe(key: dict[str, Any]) -> str:
    words = key.get("words") or []
    return f"{len(words)} words, {key.get('speakers')} speakers, seed {key.get('seed')}"


def _summary(out: Path, existed: bool, seconds: float) -> str:
    marker = read_marker(out) or {}
    counts = marker.get("split_speakers", {})
    speakers = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("training", "validation", "testing"))
    what = f"{marker.get('clips')} clips, {_describe(marker)} ({speakers} speakers)"
    if existed:
        return f"{out}: complete corpus already there ({what}); nothing to do"
    return f"wrote {what} and {marker.get('noise_files')} noise files to {out} in {seconds:.1f} s"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="speechrnn-synth",
        description="Write an offline speech-commands corpus spoken by espeak-ng, in GSC layout.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where the corpus goes")
    parser.add_argument("--words", help="comma-separated words (default: the 35 GSC v2 words)")
    parser.add_argument(
        "--speakers",
        type=int,
        default=DEFAULT_SPEAKERS,
        help=f"number of synthetic speakers (default {DEFAULT_SPEAKERS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="parallel espeak-ng processes (default: all cores)"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
