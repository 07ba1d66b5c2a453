"""The negative-speech benchmark: an hour of speech without commands, and its false alarms."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from speechrnn.audio import SAMPLE_RATE, load_audio, read_audio, to_pcm16
from speechrnn.data.index import scan_corpus, word_of
from speechrnn.data.staging import is_complete, read_marker, staged, write_marker
from speechrnn.data.synth import noise
from speechrnn.data.synth.negative_plan import NegativeSettings
from speechrnn.data.synth.negatives import negative_clips
from speechrnn.errors import ConfigError, DataError
from speechrnn.evaluation.longform import Event, LongformConfig, Recording, build_recording
from speechrnn.evaluation.longform import write_labels as write_events
from speechrnn.evaluation.scans import Scan, WindowScan
from speechrnn.evaluation.spotting import DEFAULT_THRESHOLDS, TARGET_FA_PER_HOUR, match
from speechrnn.inference.streaming import StreamConfig
from speechrnn.labels import COMMANDS, NOISE_DIR, UNKNOWN, keywords

KIND = "speechrnn-negative-bench"
FORMAT = 1
WAV = "negative_bench.wav"
LABELS = "negative_bench.tsv"
SYNTHETIC, REAL = "synthetic:", "real:"  # the prefixes of an event's source
MAX_SECONDS = 24 * 3600.0
# Dense talk: a clip every 2 s on average, so an hour holds about 1,800 words and phrases.
BENCH_CONFIG = LongformConfig(gap=(0.1, 0.8), unknown_share=0.0, noise_share=0.1)

Clip = tuple[str, np.ndarray, str]  # label, (T,) float32 wave, source


def bench_clips(negatives: Path, corpus: Path | None = None) -> list[Clip]:
    """The held-out negatives, then the non-command clips of the corpus's validation and test
    splits, all labelled `_unknown_`, in a fixed order."""
    held = negative_clips(negatives, "heldout")
    clips = [(UNKNOWN, load_audio(held.root / p), SYNTHETIC + p) for p in held.paths]
    if corpus is not None:
        index = scan_corpus(Path(corpus))
        for rel in (*index.splits["validation"], *index.splits["test"]):
            if word_of(rel) not in COMMANDS:
                clips.append((UNKNOWN, load_audio(index.root / rel), REAL + rel))
    if not clips:
        raise DataError(f"{negatives}: no held-out clips to build the benchmark from")
    return clips


def bench_noise(corpus: Path | None, seed: int) -> list[np.ndarray]:
    """The corpus's background-noise recordings, or generated coloured noise and hum."""
    files = sorted((Path(corpus) / NOISE_DIR).glob("*.wav")) if corpus is not None else []
    if files:
        return [read_audio(f) for f in files]
    return [wave for wave in noise.background_noise(seed, []).values() if wave.any()]


def build_bench(
    out_dir: Path,
    negatives: Path,
    corpus: Path | None = None,
    config: LongformConfig = BENCH_CONFIG,
) -> Path:
    """Write `negative_bench.wav` and `negative_bench.tsv` to `out_dir` (staged, marker last);
    a no-op when it is already there, built from the same inputs."""
    made = read_marker(Path(negatives)) or {}
    key = {
        "kind": KIND,
        "format": FORMAT,
        "longform": json.loads(json.dumps(dataclasses.asdict(config))),
        "negatives": str(Path(negatives).absolute()),
        "negatives_settings": {name: made.get(name) for name in NegativeSettings().key()},
        "corpus": None if corpus is None else str(Path(corpus).absolute()),
    }
    out = Path(out_dir)
    if not is_complete(out, key):
        clips = bench_clips(Path(negatives), corpus)
        recording = build_recording(clips, [], bench_noise(corpus, config.seed), config)
        with staged(out) as build_dir:
            sf.write(str(build_dir / WAV), to_pcm16(recording.wave), SAMPLE_RATE, subtype="PCM_16")
            write_events(recording.events, build_dir / LABELS)
            sources = [e.source for e in recording.events]
            write_marker(
                build_dir,
                {
                    **key,
                    "seconds": round(recording.seconds, 3),
                    "events": len(recording.events),
                    "synthetic_events": sum(s.startswith(SYNTHETIC) for s in sources),
                    "real_events": sum(s.startswith(REAL) for s in sources),
                    "distinct_clips": len(set(sources)),
                    "available_clips": len(clips),
                },
            )
    return out


def load_bench(directory: Path) -> Recording:
    """A built benchmark: its wave and its events (all `_unknown_`)."""
    directory = Path(directory)
    if (read_marker(directory) or {}).get("kind") != KIND:
        raise DataError(f"{directory}: not a finished negative-speech benchmark")
    with (directory / LABELS).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    events = [
        Event(
            r["label"],
            float(r["start"]),
            float(r["end"]),
            float(r["clip_start"]),
            float(r["snr_db"]) if r["snr_db"] else None,
            r["source"],
        )
        for r in rows
    ]
    return Recording(read_audio(directory / WAV, max_seconds=MAX_SECONDS), events)


def false_alarms(
    wave: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    events: Sequence[Event],
    stream: StreamConfig,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """`scan_false_alarms` of speechrnn-predict's detector over (N, C) window posteriors."""
    scan = WindowScan(wave, posteriors, list(labels), stream)
    return scan_false_alarms(scan, events, thresholds, stream.threshold)


def scan_false_alarms(
    scan: Scan, events: Sequence[Event], thresholds: Sequence[float], default: float
) -> dict[str, Any]:
    """False alarms per hour at every threshold, overall and per keyword, of a detector over a
    recording with `_unknown_` events only: every detection is one."""
    grid = sorted({*map(float, thresholds), default})
    if not all(0.0 <= t <= 1.0 for t in grid):
        raise ConfigError(f"thresholds must lie in [0, 1], got {list(thresholds)}")
    hours = scan.wave.shape[0] / SAMPLE_RATE / 3600.0
    counts: dict[str, list[int]] = {k: [] for k in ["overall", *keywords(scan.labels)]}
    for threshold in grid:
        found = scan.detections(threshold)
        wrong = [found[d].label for d in match(events, found, 0.0).false_alarms]
        for key, row in counts.items():
            row.append(len(wrong) if key == "overall" else wrong.count(key))
    per = {key: _rates(grid, row, hours) for key, row in counts.items()}
    return {
        "hours": hours,
        "thresholds": grid,
        "default_threshold": default,
        "overall": per.pop("overall"),
        "keywords": per,
    }


def _rates(grid: list[float], counts: list[int], hours: float) -> dict[str, Any]:
    """Counts and rates per threshold; the target threshold is read off the pessimistic
    envelope (the most false alarms of a threshold or any higher one), as `spotting` does."""
    raw = np.array(counts) / hours  # (G,)
    envelope = np.maximum.accumulate(raw[::-1])[::-1]  # (G,) non-increasing
    under = np.flatnonzero(envelope <= TARGET_FA_PER_HOUR)
    return {
        "false_alarms": counts,
        "fa_per_hour_raw": raw.tolist(),
        "fa_per_hour": envelope.tolist(),
        "threshold_at_target": grid[int(under[0])] if under.size else None,
    }
