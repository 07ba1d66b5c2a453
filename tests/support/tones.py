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
