"""Takes of a new word: each utterance in the recordings found by its energy, checked and centred
in a 1 s clip (silent, clipped, too short, too long or too few takes are one-line errors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE
from speechrnn.errors import AudioError
from speechrnn.inference.streaming import FRAME, FRAME_HOP, frame_db
from speechrnn.settings import bounded, check_ranges

SILENT_DB = -55.0  # a recording whose loudest 25 ms stays below this (dBFS power) is silent
STAND_OUT_DB = 10.0  # a word rises this far above the recording's noise floor
SPEECH_RANGE_DB = 30.0  # frames this far below the loudest one still belong to a word
GAP_SECONDS = 0.35  # quieter stretches shorter than this are inside a word (closures, pauses)
FULL_SCALE = 0.999  # a sample at or above this magnitude is clipped
CLIPPED_SHARE = 0.002  # a take with more clipped samples than this share is refused
MARGIN = 0.1  # seconds around a take left out of the background


@dataclass(frozen=True)
class TakeLimits:
    """How many takes, and how long a word may be."""

    min_takes: int = bounded(5, 1, 100)
    max_takes: int = bounded(50, 1, 200)
    min_seconds: float = bounded(0.15, 0.05, 1.0, " seconds")
    max_seconds: float = bounded(1.0, 0.2, 1.0, " seconds")

    def __post_init__(self) -> None:
        check_ranges(self)


class TakeError(AudioError):
    """Takes that cannot teach a word; `problems` holds one line per problem found."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems


@dataclass(frozen=True)
class Takes:
    """The takes found: each word centred in a 1 s clip, where it was, and the quiet between."""

    clips: np.ndarray  # (N, 16000) float32
    spans: list[tuple[str, float, float]]  # (recording, start s, end s) of each take
    background: list[np.ndarray]  # (T_i,) float32 stretches with no word, for noise

    def to_dict(self) -> dict[str, object]:
        return {
            "takes": [{"file": f, "start": s, "end": e} for f, s, e in self.spans],
            "background_seconds": round(sum(b.shape[0] for b in self.background) / SAMPLE_RATE, 2),
        }


def find_takes(
    recordings: Sequence[tuple[str, np.ndarray]],
    limits: TakeLimits = TakeLimits(),
    one_each: bool | None = None,
) -> Takes:
    """The takes in (name, (T,) float32 16 kHz) `recordings`: with `one_each` (the default for
    several recordings) one take in each, its loudest stretch of sound; else every stretch
    separated by pauses (bursts shorter than a word left out). TakeError lists each silent
    recording, each take too short, too long or clipped, and too few takes."""
    one_each = len(recordings) > 1 if one_each is None else one_each
    clips, spans, background, problems = [], [], [], []
    for name, wave in recordings:
        found = utterances(wave)
        if isinstance(found, str):
            problems.append(f"{name}: {found}")
            continue
        background += _between(wave, found)
        if one_each:
            found = [max(found, key=lambda span: _energy(wave, *span))]
        elif len(found) > 1:
            found = [(a, b) for a, b in found if b - a >= limits.min_seconds] or found
        for start, end in found:
            where = f"{name} at {start:.2f} s" if len(found) > 1 else name
            problem = _check(wave, start, end, limits)
            if problem:
                problems.append(f"{where}: {problem}")
            else:
                clips.append(_centred(wave, (start + end) / 2))
                spans.append((name, round(start, 3), round(end, 3)))
    if not problems and len(clips) < limits.min_takes:
        problems.append(
            f"{len(clips)} takes found in {len(recordings)} recordings; say the word at least "
            f"{limits.min_takes} times, with a short pause between takes"
        )
    if len(clips) > limits.max_takes:
        problems.append(f"{len(clips)} takes found; give at most {limits.max_takes}")
    if problems:
        raise TakeError(problems)
    return Takes(np.stack(clips), spans, background)


def utterances(wave: np.ndarray) -> list[tuple[float, float]] | str:
    """(start, end) seconds of each stretch of sound in (T,) `wave` (quiet gaps shorter than
    GAP_SECONDS bridged), or why it holds none."""
    level = frame_db(wave)  # (F,)
    peak, floor = float(level.max()), float(np.percentile(level, 10))
    if peak < SILENT_DB:
        return f"silent (loudest 25 ms at {peak:.0f} dBFS); check the microphone and its level"
    if peak - floor < STAND_OUT_DB:
        return (
            f"no word stands out from the noise (loudest {peak - floor:.0f} dB over the "
            f"background, at least {STAND_OUT_DB:.0f} needed)"
        )
    active = np.flatnonzero(level >= max(peak - SPEECH_RANGE_DB, floor + STAND_OUT_DB / 2))
    hop, frame = FRAME_HOP / SAMPLE_RATE, FRAME / SAMPLE_RATE
    breaks = np.flatnonzero(np.diff(active) * hop > GAP_SECONDS)  # the last frame of each run
    firsts, lasts = active[np.r_[0, breaks + 1]], active[np.r_[breaks, active.size - 1]]
    end = wave.shape[0] / SAMPLE_RATE
    return [
        (a * hop, min(end, b * hop + frame))
        for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True)
    ]


def _energy(wave: np.ndarray, start: float, end: float) -> float:
    return float(np.square(wave[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]).sum())


def _check(wave: np.ndarray, start: float, end: float, limits: TakeLimits) -> str | None:
    seconds = end - start
    if seconds < limits.min_seconds:
        return f"too short ({seconds:.2f} s of sound, at least {limits.min_seconds:g} s)"
    if seconds > limits.max_seconds:
        return (
            f"too long ({seconds:.2f} s of sound, at most {limits.max_seconds:g} s); "
            "pause between takes"
        )
    take = wave[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    share = float(np.mean(np.abs(take) >= FULL_SCALE))
    if share > CLIPPED_SHARE:
        return f"clipped ({100 * share:.1f}% of its samples at full scale); lower the input level"
    return None


def _centred(wave: np.ndarray, centre: float) -> np.ndarray:
    """(16000,) float32 of `wave` around `centre` seconds, zero-padded past its ends."""
    first = round(centre * SAMPLE_RATE) - CLIP_SAMPLES // 2
    padded = np.pad(wave, CLIP_SAMPLES)  # (T + 2 * 16000,)
    return padded[first + CLIP_SAMPLES : first + 2 * CLIP_SAMPLES].astype(np.float32)


def _between(wave: np.ndarray, found: list[tuple[float, float]] | str) -> list[np.ndarray]:
    """The stretches of `wave` at least MARGIN away from every take (none of a silent one)."""
    if isinstance(found, str):
        return []
    keep = np.ones(wave.shape[0], bool)  # (T,)
    for start, end in found:
        keep[max(0, int((start - MARGIN) * SAMPLE_RATE)) : int((end + MARGIN) * SAMPLE_RATE)] = 0
    edges = np.flatnonzero(np.diff(np.r_[0, keep.astype(np.int8), 0]))  # run starts and ends
    runs = zip(edges[::2], edges[1::2], strict=True)
    return [wave[a:b].astype(np.float32) for a, b in runs if b - a >= MARGIN * SAMPLE_RATE]
