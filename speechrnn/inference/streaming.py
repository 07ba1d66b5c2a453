"""Keyword spotting over long audio: sliding windows, smoothed posteriors, detections, endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE, window_energy
from speechrnn.errors import ConfigError
from speechrnn.inference.decisions import Detection
from speechrnn.labels import SILENCE, UNKNOWN

FRAME = 400  # 25 ms energy frames for endpointing
FRAME_HOP = 160  # 10 ms
SPEECH_RANGE_DB = 25.0  # frames this far below the keyword's loudest frame still belong to it
NOISE_MARGIN_DB = 6.0  # ... and must stand this far above the file's noise floor
MAX_GAP = 0.15  # seconds of quieter frames (stop closures) bridged inside one word


@dataclass(frozen=True)
class StreamConfig:
    """Sliding-window keyword spotting over long audio (all times in seconds)."""

    stride: float = 0.1  # hop between 1 s windows
    average: float = 0.5  # causal moving average over the window posteriors
    threshold: float = 0.7  # smoothed posterior a keyword needs to be reported
    suppress: float = 1.0  # after a detection, no other starts within this time
    batch_size: int = 64  # windows per forward pass

    def __post_init__(self) -> None:
        if not 0.01 <= self.stride <= 1.0:
            raise ConfigError(f"stride must be in [0.01, 1] seconds, got {self.stride}")
        if self.average < 0:
            raise ConfigError(f"average must be at least 0 seconds, got {self.average}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"detection threshold must be in [0, 1], got {self.threshold}")
        if self.suppress < 0:
            raise ConfigError(f"suppress must be at least 0 seconds, got {self.suppress}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")

    @property
    def hop(self) -> int:
        return max(1, round(self.stride * SAMPLE_RATE))

    @property
    def average_windows(self) -> int:
        return max(1, round(self.average / self.stride))


def window_starts(samples: int, hop: int, clip: int = CLIP_SAMPLES) -> np.ndarray:
    """Sample offsets (on a grid anchored at 0) of every window that overlaps the audio."""
    first = -((clip - 1) // hop)
    last = max(0, -(-samples // hop) - 1)
    return np.arange(first, last + 1, dtype=np.int64) * hop  # (N,)


def iter_windows(
    wave: np.ndarray, hop: int, batch_size: int, clip: int = CLIP_SAMPLES
) -> Iterator[np.ndarray]:
    """(b, clip) float32 batches of the sliding windows of (T,) `wave`, zero-padded both ends.

    Each batch is cut from the wave on its own: memory is one batch, however long the audio."""
    starts = window_starts(wave.shape[0], hop, clip)
    for first in range(0, starts.shape[0], batch_size):
        lo, hi = int(starts[first]), int(starts[min(first + batch_size, starts.shape[0]) - 1])
        span = np.zeros(hi - lo + clip, dtype=np.float32)  # (b * hop + clip,) roughly
        inside = wave[max(0, lo) : hi + clip]
        span[max(0, -lo) : max(0, -lo) + inside.shape[0]] = inside
        yield np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(span, clip)[::hop])


def smooth(posteriors: np.ndarray, windows: int) -> np.ndarray:
    """Causal moving average over the last `windows` rows of (N, C) posteriors."""
    csum = np.cumsum(np.vstack([np.zeros_like(posteriors[:1]), posteriors]), axis=0)  # (N+1, C)
    index = np.arange(posteriors.shape[0])  # (N,)
    lo = np.maximum(0, index + 1 - windows)
    return (csum[index + 1] - csum[lo]) / (index + 1 - lo)[:, None]


def detect(
    wave: np.ndarray, posteriors: np.ndarray, labels: list[str], config: StreamConfig
) -> list[Detection]:
    """Keyword detections in (T,) `wave` from the (N, C) posteriors of its `iter_windows`."""
    starts = window_starts(wave.shape[0], config.hop) / SAMPLE_RATE  # (N,) seconds
    smoothed = smooth(posteriors, config.average_windows)  # (N, C)
    reportable = np.array([lab not in (SILENCE, UNKNOWN) for lab in labels])  # (C,)
    armed = np.ones(len(labels), dtype=bool)  # (C,) a label re-arms once it drops below threshold
    level = frame_db(wave)  # (F,)
    last = -np.inf
    found: list[Detection] = []
    for i, row in enumerate(smoothed):
        armed |= row < config.threshold
        top = int(np.argmax(row))
        if not (reportable[top] and armed[top] and row[top] >= config.threshold):
            continue
        if starts[i] - last < config.suppress:
            continue
        armed[top] = False
        last = starts[i]
        first, final = _run(posteriors, top, i, config.average_windows)
        start, end = speech_span(level, starts[first], starts[final])
        found.append(Detection(labels[top], start, end, float(row[top])))
    return found


def _run(posteriors: np.ndarray, label: int, index: int, recent: int) -> tuple[int, int]:
    """First and last window of the contiguous run won by `label` around a trigger at `index`."""
    winners = posteriors.argmax(axis=1) == label  # (N,)
    near = np.arange(max(0, index + 1 - recent), index + 1)
    hits = near[winners[near]]
    anchor = int(hits[-1]) if hits.size else int(near[np.argmax(posteriors[near, label])])
    first = last = anchor
    while first > 0 and winners[first - 1]:
        first -= 1
    while last + 1 < winners.shape[0] and winners[last + 1]:
        last += 1
    return first, last


def frame_db(wave: np.ndarray) -> np.ndarray:
    """(F,) energy in dB of 25 ms frames every 10 ms over (T,) `wave`."""
    count = -(-max(1, wave.shape[0] - FRAME + 1) // FRAME_HOP)
    energy = np.concatenate([e for _, e in window_energy(wave, FRAME, FRAME_HOP, count)])  # (F,)
    begin = np.arange(count, dtype=np.int64) * FRAME_HOP  # (F,)
    size = np.maximum(1, np.minimum(begin + FRAME, wave.shape[0]) - begin)  # (F,)
    return 10.0 * np.log10(energy / size + 1e-10)


def speech_span(level: np.ndarray, first: float, last: float) -> tuple[float, float]:
    """(start, end) seconds of the keyword heard by every window starting in [first, last].

    Every such window overlaps the word, so it lies around the core between `first + 1 s` and
    `last`; its edges are where the energy falls below the word's peak and the noise floor.
    """
    clip = CLIP_SAMPLES / SAMPLE_RATE
    step = FRAME_HOP / SAMPLE_RATE
    lo_core, hi_core = sorted((first + clip, last))
    lo, hi = _frame(max(0.0, first), level), _frame(last + clip, level) + 1
    core = slice(_frame(lo_core - 0.1, level), _frame(hi_core + 0.1, level) + 1)
    peak = core.start + int(np.argmax(level[core]))
    floor = float(np.percentile(level, 10))
    active = level >= max(level[peak] - SPEECH_RANGE_DB, floor + NOISE_MARGIN_DB)  # (F,)
    gap = round(MAX_GAP / step)
    start = end = peak
    while start > lo and active[max(lo, start - gap) : start].any():
        start -= 1 + int(np.argmax(active[max(lo, start - gap) : start][::-1]))
    while end + 1 < hi and active[end + 1 : min(hi, end + 1 + gap)].any():
        end += 1 + int(np.argmax(active[end + 1 : min(hi, end + 1 + gap)]))
    centre = FRAME / 2 / SAMPLE_RATE
    return round(start * step + centre, 3), round(end * step + centre, 3)


def _frame(seconds: float, level: np.ndarray) -> int:
    return int(np.clip(round(seconds * SAMPLE_RATE / FRAME_HOP), 0, level.shape[0] - 1))
