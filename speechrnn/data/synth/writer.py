"""The offline speech-commands corpus: espeak-ng speakers written in the exact GSC layout."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE, to_pcm16
from speechrnn.data.parallel import default_jobs, run_tasks
from speechrnn.data.staging import is_complete, staged, write_marker
from speechrnn.data.synth import noise
from speechrnn.data.synth.espeak import (
    AMPLITUDES,
    PITCHES,
    RATES,
    Inventory,
    Voice,
    inventory,
    speak,
    utterance,
)
from speechrnn.errors import ConfigError
from speechrnn.labels import GSC_V2_WORDS, LIST_FILES, NOISE_DIR

GSC_WORDS = GSC_V2_WORDS
DEFAULT_SPEAKERS = 120
MAX_SPEAKERS = 5000
FORMAT = 1
SPLIT_LISTS = {"validation": LIST_FILES["validation"], "testing": LIST_FILES["test"]}
VALIDATION_PERCENT = 10.0
TESTING_PERCENT = 10.0
MAX_SPEECH = int(0.95 * CLIP_SAMPLES)
FADE = SAMPLE_RATE // 200  # 5 ms ramps at both ends of the trimmed speech
_WORD = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class SynthSettings:
    """What a corpus is made of; the same settings always give byte-identical files."""

    words: tuple[str, ...] = GSC_WORDS
    speakers: int = DEFAULT_SPEAKERS
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.words:
            raise ConfigError("words: give at least one word")
        bad = [w for w in self.words if not _WORD.fullmatch(w)]
        if bad:
            raise ConfigError(f"words: {bad[0]!r} is not a lower-case word (a-z, 0-9, _ or -)")
        if len(set(self.words)) != len(self.words):
            raise ConfigError("words: each word may appear only once")
        if not 1 <= self.speakers <= MAX_SPEAKERS:
            raise ConfigError(f"speakers: {self.speakers} is out of range 1..{MAX_SPEAKERS}")
        if self.seed < 0:
            raise ConfigError(f"seed: {self.seed} must be >= 0")

    def key(self) -> dict[str, Any]:
        """The settings as stored in (and compared with) a corpus's completion marker."""
        return {
            "kind": "speechrnn-synth",
            "format": FORMAT,
            "words": sorted(self.words),
            "speakers": self.speakers,
            "seed": self.seed,
        }


def gsc_split(speaker_id: str) -> str:
    """GSC's own rule (TensorFlow speech_commands `which_set`): a speaker's split from its sha1."""
    digest = int(hashlib.sha1(speaker_id.encode()).hexdigest(), 16)
    percentage = (digest % (2**27)) * (100.0 / (2**27 - 1))
    if percentage < VALIDATION_PERCENT:
        return "validation"
    if percentage < VALIDATION_PERCENT + TESTING_PERCENT:
        return "testing"
    return "training"


def split_quota(speakers: int) -> dict[str, int]:
    """How many speakers each split gets: 10 % / 10 % (at least one each from 3 speakers on)."""
    held = max(1, round(speakers * VALIDATION_PERCENT / 100)) if speakers >= 3 else 0
    return {"validation": held, "testing": held, "training": speakers - 2 * held}


def choose_speakers(settings: SynthSettings, inv: Inventory) -> list[Voice]:
    """Distinct random speakers whose GSC-rule splits fill `split_quota` exactly."""
    rng = np.random.default_rng([settings.seed, 1])
    left = split_quota(settings.speakers)
    chosen: dict[str, Voice] = {}
    while len(chosen) < settings.speakers:
        voice = random_voice(rng, inv)
        split = gsc_split(voice.speaker_id)
        if voice.speaker_id not in chosen and left[split] > 0:
            chosen[voice.speaker_id] = voice
            left[split] -= 1
    return list(chosen.values())


def render_clip(binary: str, voice: Voice, word: str, seed: int) -> np.ndarray:
    """One GSC clip: `word` by `voice`, random gain, at a random offset in 1 s; int16 (16000,)."""
    rng = clip_rng(seed, voice, word)
    speech = faded_speech(binary, voice, word)  # (S,)
    speech *= 10 ** (rng.uniform(-3.0, 3.0) / 20)
    speech *= min(1.0, 0.99 / max(np.abs(speech).max(), 1e-9))
    return to_pcm16(place(speech, rng))


def clip_rng(seed: int, voice: Voice, text: str) -> np.random.Generator:
    """The generator of one clip's random choices, fixed by the seed, the speaker and the text."""
    return np.random.default_rng([seed, int(voice.speaker_id, 16), zlib.crc32(text.encode())])


def faded_speech(binary: str, voice: Voice, text: str) -> np.ndarray:
    """`text` by `voice`, trimmed to fit a clip, with 5 ms ramps at both ends; float64 (S,)."""
    speech = utterance(binary, voice, text, MAX_SPEECH).astype(np.float64)  # (S,)
    ramp = np.linspace(0.0, 1.0, min(FADE, speech.shape[0] // 2))
    speech[: ramp.size] *= ramp
    speech[speech.shape[0] - ramp.size :] *= ramp[::-1]
    return speech


def place(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(S,) speech at a random offset in 1 s of silence; float64 (16000,)."""
    clip = np.zeros(CLIP_SAMPLES)  # (16000,)
    start = int(rng.integers(0, CLIP_SAMPLES - speech.shape[0] + 1))
    clip[start : start + speech.shape[0]] = speech
    return clip


def synthesize(
    out_dir: Path,
    words: Sequence[str] | None = None,
    speakers: int = DEFAULT_SPEAKERS,
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the corpus to `out_dir` (GSC layout); a no-op when it is already there, complete."""
    settings = SynthSettings(tuple(words) if words is not None else GSC_WORDS, speakers, seed)
    workers = jobs if jobs is not None else default_jobs()
    if workers < 1:
        raise ConfigError(f"jobs: {workers} must be >= 1")
    out = Path(out_dir)
    if not is_complete(out, settings.key()):
        inv = inventory()
        with staged(out) as build_dir:
            _build(build_dir, settings, inv, workers, progress)
    return out


def random_voice(rng: np.random.Generator, inv: Inventory) -> Voice:
    """A speaker drawn uniformly from the inventory's voices and variants and the espeak ranges."""

    def pick(options: Sequence[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    return Voice(pick(inv.voices), pick(inv.variants), pick(RATES), pick(PITCHES), pick(AMPLITUDES))


def _build(root: Path, settings: SynthSettings, inv: Inventory, jobs: int, progress: bool) -> None:
    speakers = choose_speakers(settings, inv)
    rng = np.random.default_rng([settings.seed, 2])
    talkers = [random_voice(rng, inv) for _ in range(noise.BABBLE_VOICES)]
    tasks: list[Callable[[], Any]] = [
        partial(speak, inv.binary, v, noise.babble_script(rng)) for v in talkers
    ]
    for word in settings.words:
        (root / word).mkdir()
        tasks += [partial(_write_clip, root, inv.binary, v, word, settings.seed) for v in speakers]
    tracks = run_tasks(tasks, jobs, "synthesizing", progress)[: len(talkers)]
    (root / NOISE_DIR).mkdir()
    noise_waves = noise.background_noise(settings.seed, tracks)
    for stem, wave in noise_waves.items():
        write_wav(root / NOISE_DIR / f"{stem}.wav", to_pcm16(wave))
    splits = {v.speaker_id: gsc_split(v.speaker_id) for v in speakers}
    for split, name in SPLIT_LISTS.items():
        lines = sorted(
            _clip_name(w, s) for w in settings.words for s in splits if splits[s] == split
        )
        (root / name).write_text("".join(f"{line}\n" for line in lines))
    counts = {split: list(splits.values()).count(split) for split in split_quota(1)}
    clips = len(speakers) * len(settings.words)
    marker = {
        **settings.key(),
        "clips": clips,
        "split_speakers": counts,
        "noise_files": len(noise_waves),
        "espeak_ng": inv.version,
    }
    write_marker(root, marker)


def _write_clip(root: Path, binary: str, voice: Voice, word: str, seed: int) -> None:
    write_wav(root / _clip_name(word, voice.speaker_id), render_clip(binary, voice, word, seed))


def _clip_name(word: str, speaker_id: str) -> str:
    return f"{word}/{speaker_id}_nohash_0.wav"


def write_wav(path: Path, pcm: np.ndarray) -> None:
    """(T,) int16 as a 16 kHz mono PCM16 WAV file."""
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
