"""Long test recordings: commands and other words at known times over background noise."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE
from speechrnn.errors import ConfigError, DataError
from speechrnn.inference.streaming import frame_db

SPEECH_RANGE_DB = 30.0  # frames of a clean clip this far below its peak still count as the word
LABEL_COLUMNS = ("label", "start", "end", "clip_start", "snr_db", "source")


@dataclass(frozen=True)
class Event:
    """A word in a long recording: label and where its speech starts and ends (seconds)."""

    label: str
    start: float
    end: float
    clip_start: float = 0.0  # where its 1 s clip begins (built recordings only)
    snr_db: float | None = None
    source: str = ""


@dataclass(frozen=True)
class LongformConfig:
    """How a long test recording is built from a split's clips (times in seconds)."""

    duration: float = 3600.0  # one hour: a single false alarm is 1 FA/h
    seed: int = 0
    snrs: tuple[float, ...] = (20.0, 10.0, 5.0)  # speech over noise, drawn per clip
    noise_db: float = -35.0  # RMS of the background noise, dB full scale
    gap: tuple[float, float] = (1.0, 3.0)  # noise between two clips, drawn uniformly
    unknown_share: float = 0.25  # of the placed clips: other words
    noise_share: float = 0.15  # of the slots: a stretch of noise alone, 2-8 s

    def __post_init__(self) -> None:
        if self.duration < 10.0:
            raise ConfigError(f"longform.duration must be at least 10 seconds, got {self.duration}")
        if not self.snrs:
            raise ConfigError("longform.snrs needs at least one signal-to-noise ratio")
        low, high = self.gap
        if not 0.0 <= low <= high:
            raise ConfigError(
                f"longform.gap must be [low, high] with 0 <= low <= high, got {self.gap}"
            )
        for name in ("unknown_share", "noise_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"longform.{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class Recording:
    """A long float32 wave (T,) at 16 kHz and the words placed in it."""

    wave: np.ndarray
    events: list[Event]

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / SAMPLE_RATE


def speech_extent(clip: np.ndarray) -> tuple[float, float]:
    """(start, end) seconds of the word in a clean (T,) clip: frames near its loudest."""
    level = frame_db(clip)  # (F,)
    active = np.flatnonzero(level >= level.max() - SPEECH_RANGE_DB)
    hop, frame = 160 / SAMPLE_RATE, 400 / SAMPLE_RATE
    return round(float(active[0] * hop), 3), round(
        min(clip.shape[0] / SAMPLE_RATE, float(active[-1] * hop + frame)), 3
    )


def build_recording(
    commands: Sequence[tuple[str, np.ndarray, str]],
    unknown: Sequence[tuple[str, np.ndarray, str]],
    noise: Sequence[np.ndarray],
    config: LongformConfig,
) -> Recording:
    """Clips (label, (T,) float wave, source) placed over noise, fixed by `config.seed`.

    Commands come in a seeded order, all of them before any repeats; each is scaled so its
    speech stands `snr` dB above the noise level, and labelled where its speech lies.
    """
    if not commands:
        raise DataError("no command clips to build a long recording from")
    rng = np.random.default_rng(config.seed)
    total = round(config.duration * SAMPLE_RATE)
    wave = _background(noise, total, config.noise_db, rng)  # (L,)
    queues = [_Queue(commands, rng), _Queue(unknown, rng) if unknown else None]
    events: list[Event] = []
    t = float(rng.uniform(*config.gap))
    while t + CLIP_SAMPLES / SAMPLE_RATE <= config.duration:
        draw = rng.random()
        if draw < config.noise_share:
            t += float(rng.uniform(2.0, 8.0))
            continue
        queue = (
            queues[1]
            if draw < config.noise_share + config.unknown_share and queues[1]
            else queues[0]
        )
        label, clip, source = queue.next()
        snr = float(rng.choice(config.snrs))
        start, end = speech_extent(clip)
        offset = round(t * SAMPLE_RATE)
        core = clip[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]  # (S,)
        rms = float(np.sqrt(np.mean(core.astype(np.float64) ** 2))) if core.size else 0.0
        gain = 10.0 ** ((config.noise_db + snr) / 20.0) / max(rms, 1e-8)
        wave[offset : offset + clip.shape[0]] += (gain * clip).astype(np.float32)
        clip_start = offset / SAMPLE_RATE
        events.append(
            Event(
                label,
                round(clip_start + start, 3),
                round(clip_start + end, 3),
                clip_start,
                snr,
                source,
            )
        )
        t = clip_start + clip.shape[0] / SAMPLE_RATE + float(rng.uniform(*config.gap))
    np.clip(wave, -1.0, 1.0, out=wave)
    return Recording(wave, events)


class _Queue:
    """Clips in seeded order, reshuffled whenever all have been used."""

    def __init__(
        self, clips: Sequence[tuple[str, np.ndarray, str]], rng: np.random.Generator
    ) -> None:
        self.clips, self.rng, self.order = clips, rng, np.zeros(0, np.int64)

    def next(self) -> tuple[str, np.ndarray, str]:
        if not self.order.size:
            self.order = self.rng.permutation(len(self.clips))
        index, self.order = int(self.order[0]), self.order[1:]
        return self.clips[index]


def _background(
    noise: Sequence[np.ndarray], total: int, level_db: float, rng: np.random.Generator
) -> np.ndarray:
    """(total,) float32 of noise crops (up to 10 s each), every crop at RMS `level_db`."""
    out = np.zeros(total, np.float32)
    target = 10.0 ** (level_db / 20.0)
    filled = 0
    while filled < total and noise:
        source = noise[int(rng.integers(len(noise)))]
        size = min(source.shape[0], total - filled, 10 * SAMPLE_RATE)
        offset = int(rng.integers(source.shape[0] - size + 1))
        piece = source[offset : offset + size].astype(np.float64)  # (size,)
        rms = float(np.sqrt(np.mean(piece**2)))
        out[filled : filled + size] = piece * (target / rms if rms > 0 else 0.0)
        filled += size
    return out


def write_labels(events: Sequence[Event], path: Path) -> None:
    """One row per word: label, start, end, clip start, SNR and source clip (TSV)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(LABEL_COLUMNS)
        for e in events:
            snr = "" if e.snr_db is None else f"{e.snr_db:g}"
            writer.writerow(
                [e.label, f"{e.start:.3f}", f"{e.end:.3f}", f"{e.clip_start:.3f}", snr, e.source]
            )


def read_labels(path: str | os.PathLike[str], labels: Sequence[str], seconds: float) -> list[Event]:
    """Events from a user's labels file: `word<TAB or comma>start[<sep>end]` per line (seconds).

    A header line is allowed. Words the model lacks and times outside the recording are errors.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read labels file ({exc})") from None
    events = []
    for number, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.replace("\t", ",").split(",")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            times = [float(f) for f in fields[1:3] if f]
        except ValueError:
            if number == 1:
                continue  # a header
            raise DataError(
                f"{path}:{number}: expected word,start[,end] in seconds, got {line!r}"
            ) from None
        if len(fields) < 2 or not times:
            raise DataError(f"{path}:{number}: expected word,start[,end] in seconds, got {line!r}")
        word, start, end = fields[0], times[0], times[-1]
        if word not in labels:
            raise DataError(
                f"{path}:{number}: the model has no label {word!r} "
                f"(its labels: {', '.join(labels)})"
            )
        if not 0.0 <= start <= end <= seconds:
            raise DataError(
                f"{path}:{number}: times {start:g}-{end:g} s lie outside the recording "
                f"(0-{seconds:.3f} s)"
            )
        events.append(Event(word, start, end))
    if not events:
        raise DataError(f"{path}: no labelled words in this file")
    return events
