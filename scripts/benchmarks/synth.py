"""Synthetic-corpus benchmark: a fresh espeak-ng corpus written into a temporary dir."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from speechrnn.data.synth.writer import read_marker, synthesize


def bench_synth(
    speakers: int = 100, words: Sequence[str] | None = None, jobs: int | None = None
) -> dict[str, float]:
    """Time a fresh corpus (default 35 words x 100 speakers) in a temporary dir, for bench.py."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = synthesize(Path(tmp) / "corpus", words, speakers, jobs=jobs, progress=False)
        seconds = time.perf_counter() - start
        clips = float((read_marker(out) or {})["clips"])
    return {"seconds": seconds, "clips": clips, "clips_per_second": clips / seconds}
