"""A recording's detector at any threshold: sliding windows or a listener's steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE
from speechrnn.inference.decisions import Detection
from speechrnn.inference.operating_point import OperatingPoint, detections, step_windows
from speechrnn.inference.streaming import StreamConfig, detect, smooth, window_starts

ROUNDING = 1e-9  # smoothed posteriors that differ by less are the same value
EDGE = 1e-9  # a listener's thresholds stay this far inside (0, 1): its scores take their log


class Scan(Protocol):
    """The detections in `wave` at any one threshold, and when each fired."""

    wave: np.ndarray
    labels: list[str]

    def detections(self, threshold: float) -> list[Detection]: ...

    def trigger_times(self, threshold: float, found: Sequence[Detection]) -> list[float]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class WindowScan:
    """speechrnn-predict's detector over the (N, C) posteriors of the 1 s windows of `wave`."""

    wave: np.ndarray  # (T,)
    posteriors: np.ndarray  # (N, C)
    labels: list[str]
    config: StreamConfig

    def detections(self, threshold: float) -> list[Detection]:
        at = dataclasses.replace(self.config, threshold=threshold)
        return detect(self.wave, self.posteriors, self.labels, at)

    def trigger_times(self, threshold: float, found: Sequence[Detection]) -> list[float]:
        at = dataclasses.replace(self.config, threshold=threshold)
        return trigger_times(self.wave.shape[0], self.posteriors, self.labels, at, found)

    def describe(self) -> dict[str, Any]:
        return {"kind": "windows", **dataclasses.asdict(self.config)}


@dataclass(frozen=True)
class StepScan:
    """A listener's detector over the (S, C) step posteriors of `wave`: `point`'s smoothing and
    suppression with every keyword at the swept threshold."""

    wave: np.ndarray  # (T,)
    posteriors: np.ndarray  # (S, C)
    labels: list[str]
    point: OperatingPoint

    def at(self, threshold: float) -> OperatingPoint:
        shared = min(max(threshold, EDGE), 1.0 - EDGE)
        thresholds = dict.fromkeys(self.point.thresholds, shared)
        return dataclasses.replace(self.point, thresholds=thresholds)

    def detections(self, threshold: float) -> list[Detection]:
        return detections(self.wave, self.posteriors, self.labels, self.at(threshold))

    def trigger_times(self, threshold: float, found: Sequence[Detection]) -> list[float]:
        """The end of the window that holds the step each detection fired at (one step after
        the step's end at most: see step_windows)."""
        point = self.at(threshold)
        step = round(point.step_seconds * SAMPLE_RATE)
        scores = point.scores(self.posteriors, self.labels)  # (S, C)
        rows = step_windows(scores, self.wave.shape[0], step, self.labels)  # (N, C)
        return trigger_times(self.wave.shape[0], rows, self.labels, point.stream_config(), found)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "listener",
            "step_seconds": self.point.step_seconds,
            "average_steps": self.point.average_steps,
            "suppress": self.point.suppress,
        }


def trigger_times(
    samples: int,
    posteriors: np.ndarray,
    labels: Sequence[str],
    config: StreamConfig,
    detections: Sequence[Detection],
) -> list[float]:
    """When each detection fires: the end of the first window around the detected word whose
    smoothed posterior is the one `detect` reported for it (to rounding; else the nearest), in
    seconds: when the last audio it needed has arrived."""
    starts = window_starts(samples, config.hop) / SAMPLE_RATE  # (N,)
    smoothed = smooth(posteriors, config.average_windows)  # (N, C)
    clip = CLIP_SAMPLES / SAMPLE_RATE
    times = []
    for det in detections:
        k = list(labels).index(det.label)
        around = np.flatnonzero((starts + clip >= det.start) & (starts <= det.end + clip))
        if not around.size:
            around = np.flatnonzero(starts + clip >= det.start)[:1]
        gap = np.abs(smoothed[around, k] - det.probability)  # (M,)
        fired = around[np.flatnonzero(gap <= gap.min() + ROUNDING)[0]]
        times.append(float(starts[fired] + clip))
    return times
