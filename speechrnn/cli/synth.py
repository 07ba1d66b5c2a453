"""speechrnn-synth: the offline espeak-ng corpus, negative speech or its benchmark (argparse)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from speechrnn.cli.options import OneLineParser
from speechrnn.console import Terminated, error_line, guarded
from speechrnn.data.staging import read_marker
from speechrnn.data.synth.negative_plan import KIND as NEGATIVES_KIND
from speechrnn.data.synth.negative_plan import NegativeSettings
from speechrnn.data.synth.negatives import generate
from speechrnn.data.synth.writer import DEFAULT_SPEAKERS, synthesize
from speechrnn.errors import ExitCode, SpeechRNNError, exit_code
from speechrnn.evaluation.negative_bench import KIND as BENCH_KIND
from speechrnn.evaluation.negative_bench import build_bench


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-synth OUT_DIR [--words yes,no,...] [--speakers N] [--seed S] [--jobs J];
    --negatives: negative speech instead; --bench NEGATIVES [--corpus GSC]: its benchmark."""
    try:
        args = _parser().parse_args(argv)
        existed = read_marker(args.out_dir) is not None
        start = time.perf_counter()
        if args.bench is not None:
            out = build_bench(args.out_dir, args.bench, args.corpus)
        elif args.negatives:
            out = generate(args.out_dir, NegativeSettings(seed=args.seed), args.jobs)
        else:
            words = [w.strip() for w in args.words.split(",") if w.strip()] if args.words else None
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


def _describe(marker: dict[str, Any]) -> str:
    """What a finished dir holds, from its completion marker."""
    if marker.get("kind") == BENCH_KIND:
        return (
            f"a {marker.get('seconds', 0) / 3600:.2f} h recording of {marker.get('events')} "
            f"words and phrases, no command ({marker.get('real_events')} real)"
        )
    if marker.get("kind") == NEGATIVES_KIND:
        parts = {part: sum(kinds.values()) for part, kinds in marker.get("clips", {}).items()}
        shown = ", ".join(f"{count:,} {part}" for part, count in parts.items())
        return f"negative speech: {sum(parts.values()):,} clips ({shown})"
    counts = marker.get("split_speakers", {})
    speakers = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("training", "validation", "testing"))
    words = marker.get("words") or []
    return (
        f"{marker.get('clips')} clips, {len(words)} words, {marker.get('speakers')} speakers, "
        f"seed {marker.get('seed')} ({speakers} speakers)"
    )


def _summary(out: Path, existed: bool, seconds: float) -> str:
    what = _describe(read_marker(out) or {})
    if existed:
        return f"{out}: complete, already there ({what}); nothing to do"
    return f"wrote {what} to {out} in {seconds:.1f} s"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="speechrnn-synth",
        description="Write an offline speech-commands corpus spoken by espeak-ng, in GSC layout; "
        "or negative speech (words that are not commands, near-misses, phrases) to train on; "
        "or the negative-speech benchmark, an hour with no command in it.",
        epilog="Exit status: 0 written or already there, 1 failed, 2 bad arguments, "
        "130 interrupted, 143 terminated. docs/data.md has the details.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where the output goes")
    parser.add_argument(
        "--negatives",
        action="store_true",
        help="write negative speech (pip install 'speechrnn[negatives]' first)",
    )
    parser.add_argument(
        "--bench",
        type=Path,
        metavar="NEGATIVES",
        help="write the benchmark recording from this negatives dir's held-out part",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        help="with --bench: a GSC-layout corpus whose validation/test non-command clips join it",
    )
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
