"""The clips a new word is taught from without the corpus: augmented takes, and negatives from
noise (generated and the user's own), the takes played backwards and espeak-ng speech."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE
from speechrnn.augment import AugmentConfig, NoiseBank, augment
from speechrnn.data.synth.espeak import Voice, inventory, utterance
from speechrnn.errors import DataError
from speechrnn.evaluation.streaming_eval import noise_recordings
from speechrnn.inference.takes import Takes
from speechrnn.labels import GSC_V2_WORDS, RESERVED_PREFIX

MIN_BACKGROUND = 0.25  # seconds of the user's quiet worth adding to the noise bank
MAX_SHIFT = 0.25  # seconds a take may move in its clip, at most
BATCH = 256


def noise_bank(takes: Takes, seed: int) -> NoiseBank:
    """Generated white and pink noise, plus the quiet between the user's takes when there is
    enough of it (their room and microphone)."""
    generated = NoiseBank.generated(seed=seed)
    quiet = [b for b in takes.background if b.shape[0] >= MIN_BACKGROUND * SAMPLE_RATE]
    if not quiet:
        return generated
    names = [*generated.names, *(f"takes_background_{i}" for i in range(len(quiet)))]
    return NoiseBank.from_waves([*noise_recordings(generated), *quiet], names)


def take_augmentation(takes: Takes) -> AugmentConfig:
    """Training's augmentation, shifts kept small enough that the longest take stays whole."""
    longest = max(end - start for _, start, end in takes.spans)
    shift = float(np.clip((1.0 - longest) / 2 - 0.05, 0.0, MAX_SHIFT))
    return AugmentConfig(time_shift_ms=1000 * shift, gain_db=10.0, speed=0.15)


def augmented(
    clips: np.ndarray, copies: int, bank: NoiseBank, config: AugmentConfig, seed: int
) -> np.ndarray:
    """(N, T) clips -> (N * copies, T) augmented copies, seeded (training's batched ops)."""
    gen = torch.Generator().manual_seed(seed)
    rows = np.repeat(np.asarray(clips, np.float32), copies, axis=0)  # (N * copies, T)
    out = [
        augment(torch.from_numpy(rows[i : i + BATCH]), config, bank, gen).numpy()
        for i in range(0, rows.shape[0], BATCH)
    ]
    return np.concatenate(out) if out else rows


def noise_clips(bank: NoiseBank, count: int, seed: int) -> np.ndarray:
    """(count, T) noise crops at peaks from near 0 to full scale, as `_silence_` is trained."""
    gen = torch.Generator().manual_seed(seed)
    return bank.silence(count, gen)[0].numpy()


def reversed_takes(clips: np.ndarray) -> np.ndarray:
    """(N, T) the takes played backwards: the same voice and room, not the word."""
    return np.ascontiguousarray(clips[:, ::-1])


def spoken_words(labels: Sequence[str], word: str, voices: int, seed: int) -> np.ndarray | None:
    """(n, T) espeak-ng clips of the model's words and GSC's other words (never `word`) in
    `voices` voices each, centred; None when espeak-ng is not installed."""
    try:
        found = inventory()
    except DataError:
        return None
    rng = np.random.default_rng(seed)
    words = sorted({*labels, *GSC_V2_WORDS} - {word})
    clips = []
    for text in (w for w in words if not w.startswith(RESERVED_PREFIX)):
        for _ in range(voices):
            voice = Voice(
                str(rng.choice(found.voices)),
                str(rng.choice(found.variants)),
                int(rng.integers(140, 200)),
                int(rng.integers(30, 70)),
                100,
            )
            try:
                speech = utterance(found.binary, voice, text, CLIP_SAMPLES)
            except DataError:
                continue
            clips.append(_centre(speech))
    return np.stack(clips) if clips else None


def _centre(speech: np.ndarray) -> np.ndarray:
    """(16000,) float32 with (T <= 16000,) `speech` in its middle."""
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    first = (CLIP_SAMPLES - speech.shape[0]) // 2
    clip[first : first + speech.shape[0]] = speech
    return clip
