"""Keyword spotting scores on long audio: matching, miss rate and false alarms per hour, delay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speechrnn.audio import SAMPLE_RATE
from speechrnn.errors import ConfigError
from speechrnn.evaluation.longform import Event
from speechrnn.evaluation.scans import Scan, WindowScan
from speechrnn.inference.decisions import Detection
from speechrnn.inference.operating_point import TARGET_FA_PER_HOUR
from speechrnn.inference.streaming import StreamConfig, iter_windows
from speechrnn.labels import is_keyword

DEFAULT_THRESHOLDS = (
    *np.round(np.arange(0.05, 0.951, 0.05), 3).tolist(),
    0.96,
    0.97,
    0.98,
    0.99,
    0.995,
    0.999,
)


@dataclass(frozen=True)
class Match:
    """Which detections hit which events; the rest are misses and false alarms (indices)."""

    hits: list[tuple[int, int]]  # (event, detection)
    misses: list[int]
    false_alarms: list[int]


def match(events: Sequence[Event], detections: Sequence[Detection], tolerance: float) -> Match:
    """Match detections to keyword events of the same label, each at most once.

    A detection can hit an event when its span overlaps the event's span widened by
    `tolerance` seconds on both sides; it takes the nearest such event not yet hit. A second
    detection of one command, a wrong label, or a detection in noise or in another word is a
    false alarm. `_unknown_` and `_silence_` events are never hits, only context.
    """
    hit: dict[int, int] = {}
    false_alarms = []
    for d, det in sorted(enumerate(detections), key=lambda item: item[1].start):
        centre = (det.start + det.end) / 2
        near = [
            (abs((ev.start + ev.end) / 2 - centre), e)
            for e, ev in enumerate(events)
            if ev.label == det.label
            and e not in hit
            and det.start <= ev.end + tolerance
            and det.end >= ev.start - tolerance
        ]
        if near:
            hit[min(near)[1]] = d
        else:
            false_alarms.append(d)
    keywords = [e for e, ev in enumerate(events) if is_keyword(ev.label)]
    return Match(sorted(hit.items()), [e for e in keywords if e not in hit], sorted(false_alarms))


def posteriors_of(
    wave: np.ndarray, model: Callable[[np.ndarray], np.ndarray], config: StreamConfig
) -> np.ndarray:
    """(N, C) window posteriors of (T,) `wave`, windowed as speechrnn-predict does."""
    return np.concatenate([model(b) for b in iter_windows(wave, config.hop, config.batch_size)])


def sweep(
    wave: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    events: Sequence[Event],
    config: StreamConfig,
    tolerance: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """`sweep_scan` of speechrnn-predict's detector over (N, C) window posteriors of `wave`."""
    scan = WindowScan(wave, posteriors, list(labels), config)
    return sweep_scan(scan, events, tolerance, thresholds, config.threshold)


def sweep_scan(
    scan: Scan,
    events: Sequence[Event],
    tolerance: float,
    thresholds: Sequence[float],
    default: float,
) -> dict[str, Any]:
    """FRR and false alarms per hour per keyword and overall, across detection thresholds.

    `curve` is what a DET plot shows: the raw counts made monotone by their pessimistic
    envelope (at each threshold, the most false alarms of it or any higher threshold, the most
    misses of it or any lower one), so the operating point read off it holds above it too.
    The delays are measured at `default`.
    """
    grid = sorted({*map(float, thresholds), default})
    if not all(0.0 <= t <= 1.0 for t in grid):
        raise ConfigError(f"spotting.thresholds must lie in [0, 1], got {list(thresholds)}")
    hours = scan.wave.shape[0] / SAMPLE_RATE / 3600.0
    labels = scan.labels
    keywords = sorted({ev.label for ev in events if is_keyword(ev.label)}, key=labels.index)
    counts = {
        k: {
            "events": sum(
                ev.label == k or (k == "overall" and ev.label in keywords) for ev in events
            ),
            "misses": [],
            "fa": [],
        }
        for k in ["overall", *keywords]
    }
    delays: dict[str, list[float]] = {}
    for threshold in grid:
        found = scan.detections(threshold)
        result = match(events, found, tolerance)
        for key, row in counts.items():
            row["misses"].append(sum(key in ("overall", events[e].label) for e in result.misses))
            row["fa"].append(sum(key in ("overall", found[d].label) for d in result.false_alarms))
        if threshold == default:
            fired = scan.trigger_times(threshold, [found[d] for _, d in result.hits])
            delays = _delays(events, result, fired)
    per = {key: _curve(grid, row, hours, delays.get(key, [])) for key, row in counts.items()}
    return {
        "hours": hours,
        "tolerance": tolerance,
        "default_threshold": default,
        "detector": scan.describe(),
        "thresholds": grid,
        "overall": per.pop("overall"),
        "keywords": per,
    }


def _delays(events: Sequence[Event], result: Match, fired: list[float]) -> dict[str, list[float]]:
    """Seconds from the end of each hit command to its detection, overall and per keyword."""
    out: dict[str, list[float]] = {"overall": []}
    for (e, _), time in zip(result.hits, fired, strict=True):
        delay = round(time - events[e].end, 3)
        out["overall"].append(delay)
        out.setdefault(events[e].label, []).append(delay)
    return out


def _curve(
    grid: list[float], row: dict[str, Any], hours: float, delays: list[float]
) -> dict[str, Any]:
    n = max(1, row["events"])
    frr_raw = np.array(row["misses"]) / n  # (G,)
    fa_raw = np.array(row["fa"]) / hours  # (G,)
    frr = np.maximum.accumulate(frr_raw)  # non-decreasing with the threshold
    fa = np.maximum.accumulate(fa_raw[::-1])[::-1]  # non-increasing with the threshold
    under = np.flatnonzero(fa <= TARGET_FA_PER_HOUR)
    at_target = int(under[0]) if under.size else None
    return {
        "events": row["events"],
        "frr_raw": frr_raw.tolist(),
        "fa_per_hour_raw": fa_raw.tolist(),
        "frr": frr.tolist(),
        "fa_per_hour": fa.tolist(),
        "threshold_at_target": None if at_target is None else grid[at_target],
        "frr_at_target": None if at_target is None else float(frr[at_target]),
        "delay": _spread(delays),
    }


def operating_point(
    curve: dict[str, Any], grid: Sequence[float], threshold: float
) -> tuple[float, float]:
    """(FRR, false alarms per hour) measured at `threshold` (raw, not the envelope)."""
    i = list(grid).index(threshold)
    return curve["frr_raw"][i], curve["fa_per_hour_raw"][i]


def _spread(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "p90": None, "mean": None}
    arr = np.array(values)
    return {
        "count": len(values),
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "mean": float(arr.mean()),
    }
