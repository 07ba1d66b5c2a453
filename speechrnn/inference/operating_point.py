"""A listener's operating point: how its step posteriors become detections (smoothing and
per-keyword thresholds), stored as plain values in checkpoint and ONNX metadata."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speechrnn.audio import SAMPLE_RATE
from speechrnn.errors import CheckpointError
from speechrnn.inference.decisions import Detection
from speechrnn.inference.streaming import StreamConfig, detect, smooth, window_starts
from speechrnn.labels import SILENCE, keywords

TARGET_FA_PER_HOUR = 1.0  # the false-alarm budget a calibration aims at by default
DETECTOR_FORMAT = "speechrnn-detector/1"
PIVOT = 0.5  # every keyword's threshold is mapped here for the shared detector


@dataclass(frozen=True)
class OperatingPoint:
    """How a listener's step posteriors become detections.

    The posteriors are averaged over the last `average_steps` steps; the top label of a step
    fires when it is a keyword, its average reaches its threshold, it has fallen below it (or
    lost the top) since it last fired, and no detection started within `suppress` seconds.
    """

    thresholds: dict[str, float]
    average_steps: int = 1
    step_seconds: float = 0.03
    suppress: float = 1.0
    target_fa_per_hour: float = TARGET_FA_PER_HOUR

    def to_metadata(self) -> dict[str, Any]:
        """Plain values: a checkpoint's `detector` mapping, JSON in an ONNX model's metadata."""
        return {"format": DETECTOR_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_metadata(cls, meta: object, labels: Sequence[str], where: str) -> OperatingPoint:
        """The operating point of a model with `labels`; CheckpointError naming what is wrong."""
        if not isinstance(meta, dict) or meta.get("format") != DETECTOR_FORMAT:
            raise CheckpointError(f"{where}: detector settings must be {DETECTOR_FORMAT}")
        thresholds = meta.get("thresholds")
        if not isinstance(thresholds, dict) or set(thresholds) != set(keywords(labels)):
            raise CheckpointError(f"{where}: detector thresholds must name every keyword")
        try:
            point = cls(
                {k: float(v) for k, v in thresholds.items()},
                int(meta["average_steps"]),
                float(meta["step_seconds"]),
                float(meta["suppress"]),
                float(meta["target_fa_per_hour"]),
            )
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{where}: unreadable detector settings") from None
        bad = [v for v in point.thresholds.values() if not 0.0 < v < 1.0]
        if bad or point.average_steps < 1 or not point.step_seconds > 0 or point.suppress < 0:
            raise CheckpointError(f"{where}: detector settings out of range")
        return point

    def stream_config(self) -> StreamConfig:
        """The shared detector's settings for `scores`: smoothing is already in the scores."""
        return StreamConfig(
            stride=self.step_seconds, average=0.0, threshold=PIVOT, suppress=self.suppress
        )

    def scores(self, posteriors: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """(N, C) step posteriors -> (N, C) scores for the shared detector: averaged, each row
        kept at its top label only, a keyword's average mapped by x ** (ln PIVOT / ln threshold)
        so that it reaches PIVOT where the average reaches the keyword's own threshold."""
        averaged = smooth(posteriors, self.average_steps)  # (N, C)
        top = averaged.argmax(axis=1)  # (N,)
        power = np.ones(len(labels))  # (C,)
        for k, label in enumerate(labels):
            if label in self.thresholds:
                power[k] = math.log(PIVOT) / math.log(self.thresholds[label])
        out = np.zeros_like(averaged)
        rows = np.arange(averaged.shape[0])
        out[rows, top] = averaged[rows, top] ** power[top]
        return out

    def posteriors(self, found: list[Detection]) -> list[Detection]:
        """Detections from `scores` with their probability mapped back: the keyword's averaged
        posterior where it fired (the inverse of the mapping to PIVOT)."""
        return [
            dataclasses.replace(
                d,
                probability=d.probability ** (math.log(self.thresholds[d.label]) / math.log(PIVOT)),
            )
            for d in found
        ]


def step_windows(
    posteriors: np.ndarray, samples: int, step_samples: int, labels: Sequence[str]
) -> np.ndarray:
    """(S, C) step posteriors of `samples` of audio as (N, C) rows on the detector's window
    grid (`window_starts(samples, step_samples)`, 1 s windows): row i + 1, whose window ends
    at most one step after step i ends (10 ms for 30 ms steps), holds step i; rows without a
    step (the first, any after the audio) say `_silence_` (all zeros without that label)."""
    count = window_starts(samples, step_samples).shape[0]
    out = silence_rows(count, labels)  # (N, C)
    n = min(posteriors.shape[0], count - 1)
    out[1 : 1 + n] = posteriors[:n]
    return out


def silence_rows(count: int, labels: Sequence[str]) -> np.ndarray:
    """(count, C) rows that say `_silence_` (all zeros without that label); none for count < 1."""
    rows = np.zeros((max(0, count), len(labels)), np.float32)  # (count, C)
    if SILENCE in labels:
        rows[:, list(labels).index(SILENCE)] = 1.0
    return rows


def detections(
    wave: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    point: OperatingPoint,
) -> list[Detection]:
    """The detections in (T,) `wave` from its (S, C) step posteriors at this operating point;
    each probability is the score the shared detector fired at (`posteriors` maps it back)."""
    step = round(point.step_seconds * SAMPLE_RATE)
    rows = step_windows(point.scores(posteriors, labels), wave.shape[0], step, labels)
    return detect(wave, rows, list(labels), point.stream_config())
