"""Noise for synthetic audio: coloured noise, mains hum, voice babble and recording floors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speechrnn.audio import SAMPLE_RATE

NOISE_SECONDS = 60.0
NOISE_RMS = 0.1
BABBLE_VOICES = 16
# Babble speaks everyday words, none of them a GSC keyword, so it never says a command clearly.
_BABBLE_TEXT = """
the a and of to in is it that was he she they we you for with as at this but not have had from by
what when where why how all some more many much very just then than there here time people water
weather morning evening little big small good bad new old coffee table window garden paper music
station market travel number picture river mountain village summer winter yesterday tomorrow
because really maybe quite actually probably
"""
BABBLE_WORDS = tuple(_BABBLE_TEXT.split())


def colored_noise(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))  # (samples // 2 + 1,)
    freqs = np.fft.rfftfreq(samples, d=1.0 / SAMPLE_RATE)  # (samples // 2 + 1,)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return _normalise(np.fft.irfft(spectrum, n=samples))


def hum(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with decaying harmonics, a slow wobble and a faint hiss."""
    t = np.arange(samples) / SAMPLE_RATE  # (samples,)
    base = float(rng.choice([50.0, 60.0]))
    wave = np.zeros(samples)
    for k in range(1, 11):
        weight = rng.uniform(0.4, 1.0) / k
        wave += weight * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
    wave *= 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    wave += 0.03 * rng.standard_normal(samples)
    return _normalise(wave)


def babble_script(rng: np.random.Generator, seconds: float = NOISE_SECONDS) -> str:
    """A random run of everyday words, long enough for one babble voice to fill `seconds`."""
    return " ".join(rng.choice(BABBLE_WORDS, size=int(seconds * 3.5)))


def babble(rng: np.random.Generator, samples: int, tracks: Sequence[np.ndarray]) -> np.ndarray:
    """Many voices talking at once: each track looped to length, shifted at random, equal level."""
    mix = np.zeros(samples)
    for track in tracks:
        looped = np.resize(track, samples)  # (samples,)
        rms = np.sqrt(np.mean(looped.astype(np.float64) ** 2))
        if rms > 0.0:
            mix += np.roll(looped, int(rng.integers(samples))) / rms
    return _normalise(mix)


def floor_noise(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A recording's noise floor: white, pink or brown noise or hum, at RMS `NOISE_RMS`."""
    kind = int(rng.integers(4))
    return hum(rng, samples) if kind == 3 else colored_noise(rng, samples, float(kind))


def background_noise(
    seed: int, tracks: Sequence[np.ndarray], seconds: float = NOISE_SECONDS
) -> dict[str, np.ndarray]:
    """The five recordings, by file stem, as float32 at 16 kHz; `tracks` are the babble voices."""
    rng = np.random.default_rng([seed, 0x6E6F697365])
    samples = int(seconds * SAMPLE_RATE)
    return {
        "white_noise": colored_noise(rng, samples, 0.0),
        "pink_noise": colored_noise(rng, samples, 1.0),
        "brown_noise": colored_noise(rng, samples, 2.0),
        "hum": hum(rng, samples),
        "babble": babble(rng, samples, tracks),
    }


def _normalise(wave: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(wave**2))
    scaled = wave * (NOISE_RMS / rms) if rms > 0.0 else wave
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)
