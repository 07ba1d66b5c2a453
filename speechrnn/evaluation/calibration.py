"""A listener's operating point fitted on a long recording to a false-alarm budget: smoothing
and per-keyword (or one shared) thresholds, checked on the recording's matched events."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from speechrnn.audio import SAMPLE_RATE
from speechrnn.evaluation.longform import Event
from speechrnn.evaluation.spotting import match
from speechrnn.inference.operating_point import TARGET_FA_PER_HOUR, OperatingPoint, detections
from speechrnn.labels import keywords

AVERAGES = (1, 2, 3, 5)  # steps of smoothing tried
GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)


def calibrate(
    wave: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    events: Sequence[Event],
    step_seconds: float,
    target_fa_per_hour: float = TARGET_FA_PER_HOUR,
    tolerance: float = 0.5,
    averages: Sequence[int] = AVERAGES,
    grid: Sequence[float] = GRID,
    shared: bool = True,
    margin: int = 0,
) -> tuple[OperatingPoint, dict[str, Any]]:
    """Fit the operating point that hits the most commands of `events` in (T,) `wave` with at
    most `target_fa_per_hour` false alarms, from its (S, C) step posteriors.

    For each smoothing, every keyword is scored at every `grid` threshold; `shared` takes the
    lowest threshold whose false alarms keep the budget for every keyword, otherwise each
    keyword gets its own for the most hits within the budget (a knapsack); both are raised
    `margin` grid notches, then one notch at a time for the keywords of the remaining false
    alarms until the joint detector keeps the budget. Returns the best point and its hits,
    misses and false alarms. Per-keyword thresholds fitted to one false alarm in an hour do not
    carry over to the next hour (measured: 12-22 FA/h held out); one shared threshold does, so
    it is the default until calibration recordings are many hours long.
    """
    budget = int(target_fa_per_hour * wave.shape[0] / SAMPLE_RATE / 3600.0 + 1e-9)
    words = keywords(labels)
    grid = sorted({float(g) for g in grid if 0.0 < g < 1.0})
    best: tuple[int, OperatingPoint, dict[str, Any]] | None = None
    for average in averages:
        flat = OperatingPoint({k: grid[0] for k in words}, average, step_seconds)
        table = [_counts(wave, posteriors, labels, events, tolerance, flat, g) for g in grid]
        fitted = _shared(table, budget) if shared else _allocate(table, words, budget)
        picks = {k: min(len(grid) - 1, fitted[k] + margin) for k in words}
        point = dataclasses.replace(
            flat,
            thresholds={k: grid[i] for k, i in picks.items()},
            target_fa_per_hour=target_fa_per_hour,
        )
        while True:
            found = detections(wave, posteriors, labels, point)
            result = match(events, found, tolerance)
            if len(result.false_alarms) <= budget:
                break
            raised = dict(point.thresholds)
            for label in words if shared else {found[d].label for d in result.false_alarms}:
                picks[label] = min(len(grid) - 1, picks[label] + 1)
                raised[label] = grid[picks[label]]
            if raised == point.thresholds:
                break
            point = dataclasses.replace(point, thresholds=raised)
        summary = {
            "average_steps": average,
            "hits": len(result.hits),
            "misses": len(result.misses),
            "false_alarms": len(result.false_alarms),
        }
        if best is None or len(result.hits) > best[0]:
            best = (len(result.hits), point, summary)
    assert best is not None
    return best[1], best[2]


def _counts(
    wave: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    events: Sequence[Event],
    tolerance: float,
    point: OperatingPoint,
    threshold: float,
) -> dict[str, tuple[int, int]]:
    """(hits, false alarms) per keyword with every keyword at `threshold`."""
    at = dataclasses.replace(point, thresholds={k: threshold for k in point.thresholds})
    found = detections(wave, posteriors, labels, at)
    result = match(events, found, tolerance)
    counts = {k: [0, 0] for k in point.thresholds}
    for e, _ in result.hits:
        counts[events[e].label][0] += 1
    for d in result.false_alarms:
        counts[found[d].label][1] += 1
    return {k: (hits, fa) for k, (hits, fa) in counts.items()}


def _shared(table: list[dict[str, tuple[int, int]]], budget: int) -> dict[str, int]:
    """The lowest grid index whose false alarms, summed over the keywords, keep the budget."""
    fits = [i for i, row in enumerate(table) if sum(fa for _, fa in row.values()) <= budget]
    index = fits[0] if fits else len(table) - 1
    return dict.fromkeys(table[0], index)


def _allocate(
    table: list[dict[str, tuple[int, int]]], keywords: list[str], budget: int
) -> dict[str, int]:
    """Grid index per keyword with the most hits whose false alarms sum to at most `budget`
    (a knapsack over the keywords; ties go to the higher threshold; a keyword over budget
    even at the top of the grid gets the top)."""
    best: dict[int, tuple[int, dict[str, int]]] = {0: (0, {})}  # false alarms -> (hits, picks)
    top = len(table) - 1
    for k in keywords:
        grown: dict[int, tuple[int, dict[str, int]]] = {}
        for used, (hits, picks) in best.items():
            for i in range(top, -1, -1):
                h, fa = table[i][k]
                total = min(budget, used + fa) if i == top else used + fa
                if total <= budget and (total not in grown or hits + h > grown[total][0]):
                    grown[total] = (hits + h, {**picks, k: i})
        best = grown
    return max(best.values(), key=lambda item: item[0])[1]
