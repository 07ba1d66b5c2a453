"""Tone corpora in GSC layout (one pitch per word) for tests and benchmarks: no speech needed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrnn.audio import SAMPLE_RATE
from speechrnn.labels import LIST_FILES, NOISE_DIR

TOY_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
TOY_OTHERS = ("bed", "cat", "dog")


def speaker_id(n: int) -> str:
    """Eight hex digits like GSC's, distinct for every n < 2**32."""
    return f"{(n * 2654435761) % 2**32:08x}"


def write_toy_corpus(
    out: Path,
    words: Sequence[str] = TOY_WORDS + TOY_OTHERS,
    speakers: int = 10,
    takes: int = 1,
    seed: int = 0,
) -> Path:
    """Write `words` x `speakers` x `takes` tone clips; every 5th speaker validation, next test."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # (T,)
    held_out: dict[str, list[str]] = {"validation": [], "test": []}
    for w, word in enumerate(words):
        (out / word).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            for take in range(takes):
                rel = f"{word}/{speaker_id(s)}_nohash_{take}.wav"
                freq = 220.0 * 2 ** (w / 4) * rng.uniform(0.97, 1.03)
                length = int(SAMPLE_RATE * rng.uniform(0.6, 1.0))
                tone = rng.uniform(0.1, 0.8) * np.sin(2 * np.pi * freq * t[:length])  # (L,)
                sf.write(out / rel, tone.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
                split = {1: "validation", 2: "test"}.get(s % 5)
                if split:
                    held_out[split].append(rel)
    for split, name in LIST_FILES.items():
        (out / name).write_text("".join(f"{rel}\n" for rel in held_out[split]), encoding="utf-8")
    write_toy_noise(out / NOISE_DIR, rng)
    return out


def write_toy_noise(folder: Path, rng: np.random.Generator, seconds: float = 3.0) -> None:
    """Two quiet noise recordings (peaks 0.02 and 0.05), like GSC's background noise."""
    folder.mkdir(parents=True, exist_ok=True)
    white = rng.standard_normal(int(seconds * SAMPLE_RATE))  # (T,)
    hum = np.sin(2 * np.pi * 50.0 * np.arange(white.size) / SAMPLE_RATE) + 0.3 * white  # (T,)
    for name, wave, peak in (("white_noise.wav", white, 0.02), ("hum.wav", hum, 0.05)):
        scaled = (peak * wave / np.abs(wave).max()).astype(np.float32)
        sf.write(folder / name, scaled, SAMPLE_RATE, subtype="PCM_16")


# A stand-in model for the scanning tests: a low and a high tone as keywords.
TONES = {"low": 500.0, "high": 1500.0}
BURST = 0.4  # seconds of each tone in a scene
LABELS = ["low", "high", "_silence_", "_unknown_"]


class ToneBackend:
    """A stand-in model: posterior of a tone label = share of a full burst heard in the window."""

    def __init__(self, amplitude: float = 0.5) -> None:
        self.labels = LABELS
        reference = np.zeros((1, SAMPLE_RATE), np.float32)
        reference[0, : int(BURST * SAMPLE_RATE)] = amplitude * tone(TONES["low"], BURST)
        self.full = float(self._energy(reference, TONES["low"])[0])

    @staticmethod
    def _energy(batch: np.ndarray, freq: float) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(batch, axis=1)) ** 2  # (B, F), 1 Hz bins
        return spectrum[:, int(freq) - 20 : int(freq) + 21].sum(axis=1)  # (B,)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        low, high = (np.clip(self._energy(batch, f) / self.full, 0, 1) for f in TONES.values())
        rest = np.clip(1 - low - high, 0, 1)
        probs = np.stack([low, high, rest, np.zeros_like(rest)], axis=1) + 1e-6  # (B, 4)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def tone(freq: float, seconds: float) -> np.ndarray:
    """A unit sine of `freq` Hz, `seconds` long, float32 at 16 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def tone_scene(events: list[tuple[str, float]], seconds: float, seed: int = 0) -> np.ndarray:
    """Tone bursts at the given onsets, over faint noise, with a louder noise burst between."""
    rng = np.random.default_rng(seed)
    wave = 0.003 * rng.standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)
    for label, onset in events:
        at = int(onset * SAMPLE_RATE)
        if label == "noise":
            burst = int(0.6 * SAMPLE_RATE)
            wave[at : at + burst] += 0.05 * rng.standard_normal(burst)
        else:
            wave[at : at + int(BURST * SAMPLE_RATE)] += 0.5 * tone(TONES[label], BURST)
    return wave
