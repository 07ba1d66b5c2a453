"""Keyword spotting over long or live audio: sliding windows, smoothed posteriors, one detector."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE, window_energy
from speechrnn.inference.decisions import Detection
from speechrnn.labels import is_keyword
from speechrnn.settings import bounded, check_ranges

FRAME = 400  # 25 ms energy frames for endpointing
FRAME_HOP = 160  # 10 ms
SPEECH_RANGE_DB = 25.0  # frames this far below the keyword's loudest frame still belong to it
NOISE_MARGIN_DB = 6.0  # ... and must stand this far above the file's noise floor
MAX_GAP = 0.15  # seconds of quieter frames (stop closures) bridged inside one word
FLOOR_CONTEXT = 2.0  # seconds before a keyword's windows that set its noise floor


@dataclass(frozen=True)
class StreamConfig:
    """Sliding-window keyword spotting over long audio (all times in seconds)."""

    stride: float = bounded(0.1, 0.01, 1.0, " seconds")  # hop between 1 s windows
    average: float = bounded(0.5, 0.0, 10.0, " seconds")  # causal moving average of posteriors
    threshold: float = bounded(0.7, 0.0, 1.0)  # smoothed posterior a keyword needs
    suppress: float = bounded(1.0, 0.0, 3600.0, " seconds")  # no other start within this time
    batch_size: int = bounded(64, 1, 1024)  # windows per forward pass

    def __post_init__(self) -> None:
        check_ranges(self)

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
    """Causal moving average over the last `windows` rows of (N, C) posteriors, in float64 (a
    float32 running sum over an hour of windows would be off by 1e-3)."""
    rows = np.vstack([np.zeros_like(posteriors[:1]), posteriors])  # (N+1, C)
    csum = np.cumsum(rows, axis=0, dtype=np.float64)  # (N+1, C)
    index = np.arange(posteriors.shape[0])  # (N,)
    lo = np.maximum(0, index + 1 - windows)
    return (csum[index + 1] - csum[lo]) / (index + 1 - lo)[:, None]


def detect(
    wave: np.ndarray, posteriors: np.ndarray, labels: list[str], config: StreamConfig
) -> list[Detection]:
    """Keyword detections in (T,) `wave` from the (N, C) posteriors of its `iter_windows`."""
    detector = Detector(labels, config)
    found = detector.add_audio(wave) + detector.add_posteriors(posteriors)
    return found + detector.finish()


class Scanner:
    """Live scanning: audio in pieces of any size -> the `iter_windows` windows -> `Detector`."""

    def __init__(
        self,
        classify: Callable[[np.ndarray], np.ndarray],
        labels: list[str],
        config: StreamConfig,
        clip: int = CLIP_SAMPLES,
    ) -> None:
        self.classify, self.config, self.clip = classify, config, clip
        self.detector = Detector(labels, config)
        lead = (clip - 1) // config.hop * config.hop  # zeros before the audio, as in iter_windows
        self._buffer = np.zeros(lead, np.float32)  # (T,) from the next window's start on

    @property
    def smoothed(self) -> np.ndarray | None:
        """(C,) the newest smoothed posteriors; None before the first window."""
        return self.detector.smoothed

    def feed(self, samples: np.ndarray) -> list[Detection]:
        """Take (T,) float32 samples at 16 kHz; return the detections they settle."""
        found = self.detector.add_audio(samples)
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        return found + self._classify()

    def finish(self) -> list[Detection]:
        """The audio has ended: classify the zero-padded last windows, return what remains."""
        hop, samples = self.config.hop, self.detector.samples
        last = int(window_starts(samples, hop, self.clip)[-1])  # the last window's start
        consumed = samples - self._buffer.shape[0]  # where the buffer starts, in samples
        padding = max(0, last + self.clip - consumed - self._buffer.shape[0])
        self._buffer = np.concatenate([self._buffer, np.zeros(padding, np.float32)])
        return self._classify(upto=(last - consumed) // hop + 1) + self.detector.finish()

    def _classify(self, upto: int | None = None) -> list[Detection]:
        hop = self.config.hop
        count = max(0, (self._buffer.shape[0] - self.clip) // hop + 1)
        count = count if upto is None else min(count, upto)
        if count == 0:
            return []
        view = np.lib.stride_tricks.sliding_window_view(self._buffer, self.clip)[::hop]
        found: list[Detection] = []
        for first in range(0, count, self.config.batch_size):
            batch = view[first : min(count, first + self.config.batch_size)].copy()  # (b, clip)
            found += self.detector.add_posteriors(self.classify(batch))  # (b, clip) -> (b, C)
        self._buffer = self._buffer[count * hop :]
        return found


class Detector:
    """The keyword detector of file scans and live streams alike.

    Audio and the posteriors of its windows (on the `window_starts` grid) arrive in any pieces;
    a detection is handed out once no later audio can change it, so every way of cutting the
    same recording into pieces gives the same detections as the whole file at once.
    """

    def __init__(self, labels: list[str], config: StreamConfig) -> None:
        self.labels, self.config = list(labels), config
        self._reportable = np.array([is_keyword(lab) for lab in labels])  # (C,)
        self._armed = np.ones(len(labels), dtype=bool)  # (C,) re-armed below the threshold
        self._recent: deque[np.ndarray] = deque(maxlen=config.average_windows)  # (C,) rows
        self._winners: list[int] = []  # argmax of every window's posterior
        self._first = -((CLIP_SAMPLES - 1) // config.hop) * config.hop  # first window's start
        self._last = -np.inf  # start of the last detection's trigger window, seconds
        self._pending: deque[tuple[int, int, float]] = deque()  # (label, anchor window, smoothed)
        self._levels: list[np.ndarray] = []  # (F,) frame energies in dB, in pieces
        self._frames = 0
        self._tail = np.zeros(0, np.float32)  # samples from the next frame's start on
        self.samples = 0
        self._finished = False
        self._ready: list[Detection] = []
        self.smoothed: np.ndarray | None = None  # (C,) the newest smoothed posterior

    @property
    def seconds(self) -> float:
        """Audio received so far."""
        return self.samples / SAMPLE_RATE

    def start(self, window: int) -> float:
        """Start of window `window` in seconds (negative for the first, zero-padded windows)."""
        return (self._first + window * self.config.hop) / SAMPLE_RATE

    def add_audio(self, samples: np.ndarray) -> list[Detection]:
        """Take (T,) more samples for endpointing; return the detections this settles."""
        self.samples += samples.shape[0]
        self._tail = np.concatenate([self._tail, samples.astype(np.float32, copy=False)])
        count = max(0, (self._tail.shape[0] - FRAME) // FRAME_HOP + 1)
        if count:
            self._add_levels(frame_levels(self._tail[: (count - 1) * FRAME_HOP + FRAME]))
            self._tail = self._tail[count * FRAME_HOP :]
        return self._settle()

    def add_posteriors(self, posteriors: np.ndarray) -> list[Detection]:
        """Take the (N, C) posteriors of the next N windows; return the detections this settles."""
        cfg = self.config
        for row in posteriors:
            index = len(self._winners)
            self._winners.append(int(np.argmax(row)))
            self._recent.append(row)
            near = np.stack(self._recent)  # (k, C)
            smoothed = smooth(near, cfg.average_windows)[-1]  # (C,)
            self.smoothed = smoothed
            self._armed |= smoothed < cfg.threshold
            top = int(np.argmax(smoothed))
            if not (self._reportable[top] and self._armed[top] and smoothed[top] >= cfg.threshold):
                continue
            if self.start(index) - self._last < cfg.suppress:
                continue
            self._armed[top] = False
            self._last = self.start(index)
            hits = np.flatnonzero(near.argmax(axis=1) == top)
            offset = int(hits[-1]) if hits.size else int(np.argmax(near[:, top]))
            self._pending.append((top, index + 1 - near.shape[0] + offset, float(smoothed[top])))
        return self._settle()

    def finish(self) -> list[Detection]:
        """The audio has ended: settle every remaining detection and return them."""
        if self._frames == 0:  # shorter than one frame: one frame of what there is
            self._add_levels(frame_levels(self._tail, partial=True))
        self._finished = True
        return self._settle()

    def _add_levels(self, levels: np.ndarray) -> None:
        self._levels.append(levels)
        self._frames += levels.shape[0]

    def _settle(self) -> list[Detection]:
        """Hand out pending detections, in order, whose run and endpoints no later input moves."""
        winners, clip = self._winners, CLIP_SAMPLES / SAMPLE_RATE
        while self._pending:
            label, anchor, probability = self._pending[0]
            last = anchor
            while last + 1 < len(winners) and winners[last + 1] == label:
                last += 1
            needed = round((self.start(last) + clip + 0.1) * SAMPLE_RATE / FRAME_HOP) + 1
            if not self._finished and (last + 1 >= len(winners) or self._frames <= needed):
                break
            first = anchor
            while first > 0 and winners[first - 1] == label:
                first -= 1
            self._levels = [np.concatenate(self._levels)]
            start, end = speech_span(self._levels[0], self.start(first), self.start(last))
            self._ready.append(Detection(self.labels[label], start, end, probability))
            self._pending.popleft()
        ready, self._ready = self._ready, []
        return ready


def frame_db(wave: np.ndarray) -> np.ndarray:
    """(F,) energy in dB of 25 ms frames every 10 ms over (T,) `wave`."""
    return frame_levels(wave, partial=wave.shape[0] < FRAME)


def frame_levels(wave: np.ndarray, partial: bool = False) -> np.ndarray:
    """(F,) dB of the whole frames of (T,) `wave`, or of all of it as one frame if `partial`;
    computed in blocks, so an hour of audio costs one block of memory, not (F, FRAME)."""
    if partial:
        power = np.square(wave, dtype=np.float64).sum() / max(1, wave.shape[0])
        return np.array([10.0 * np.log10(power + 1e-10)])
    count = (wave.shape[0] - FRAME) // FRAME_HOP + 1
    energy = np.concatenate([e for _, e in window_energy(wave, FRAME, FRAME_HOP, count)])  # (F,)
    return 10.0 * np.log10(energy / FRAME + 1e-10)


def speech_span(level: np.ndarray, first: float, last: float) -> tuple[float, float]:
    """(start, end) seconds of the keyword heard by every window starting in [first, last].

    Every such window overlaps the word, so it lies around the core between `first + 1 s` and
    `last`; its edges are where the energy falls below the word's peak and the noise floor of
    the `FLOOR_CONTEXT` seconds before the windows and the windows themselves.
    """
    clip = CLIP_SAMPLES / SAMPLE_RATE
    step = FRAME_HOP / SAMPLE_RATE
    lo_core, hi_core = sorted((first + clip, last))
    lo, hi = _frame(max(0.0, first), level), _frame(last + clip, level) + 1
    core = slice(_frame(lo_core - 0.1, level), _frame(hi_core + 0.1, level) + 1)
    peak = core.start + int(np.argmax(level[core]))
    floor = float(np.percentile(level[max(0, lo - round(FLOOR_CONTEXT / step)) : hi], 10))
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
