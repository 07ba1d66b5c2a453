"""espeak-ng as a speech source: its English voices and variants, one utterance at 16 kHz."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.audio import PCM_SCALE, SAMPLE_RATE, resample
from speechrnn.errors import DataError

INSTALL_HINT = (
    "espeak-ng is not installed (the synthetic corpus needs it); install it with "
    "`apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
)
# espeak-ng's own English voices (the mbrola ones need extra packages); absent ones are skipped.
ENGLISH_VOICES = (
    "en-us",
    "en-gb",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# Human-sounding variants (voices/!v); robotic, whispered and heavy-echo ones are left out.
_VARIANT_NAMES = """
m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 klatt5 klatt6
Alex Alicia Andrea Andy Annie AnxiousAndy Denis Diogo Gene Gene2 Henrique Hugo Jacky Lee Marco
Mario Michael Mike Nguyen Storm adam anika antonio aunty belinda benjamin boris david ed edward
edward2 grandma grandpa gustave iven iven2 iven3 iven4 kaukovalta linda marcelo max michel miguel
norbert pablo paul pedro quincy rob robert sandro shelby steph steph2 steph3 travis victor zac
"""
VARIANTS = tuple(_VARIANT_NAMES.split())
RATES = tuple(range(130, 231, 10))  # words per minute (espeak-ng default 175)
PITCHES = tuple(range(20, 81, 5))  # 0..99 (default 50)
AMPLITUDES = tuple(range(40, 101, 10))  # 0..200 (default 100; louder variants clip above 100)
MAX_RATE = 450
SILENCE_DB = -40.0  # frames this far below the loudest one count as silence when trimming
FRAME = SAMPLE_RATE // 100  # 10 ms


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak-ng voice, a variant, and its rate, pitch and amplitude."""

    voice: str
    variant: str
    rate: int
    pitch: int
    amplitude: int

    @property
    def speaker_id(self) -> str:
        """Stable 8-hex-digit id of the combination (GSC speaker ids look the same)."""
        key = f"{self.voice}+{self.variant}|s{self.rate}|p{self.pitch}|a{self.amplitude}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Inventory:
    """What the installed espeak-ng offers: its binary, version, and the usable voices/variants."""

    binary: str
    version: str
    voices: tuple[str, ...]
    variants: tuple[str, ...]


def inventory() -> Inventory:
    """Find espeak-ng and the English voices and variants that really exist in this install."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise DataError(INSTALL_HINT)
    about = _run([binary, "--version"]).decode(errors="replace")
    version = re.search(r"eSpeak NG text-to-speech: (\S+)", about)
    data_dir = re.search(r"Data at: (.+)", about)
    listed = _run([binary, "--voices=en"]).decode(errors="replace").splitlines()[1:]
    rows = [ln.split() for ln in listed]
    own = {cols[1] for cols in rows if len(cols) > 4 and not cols[4].startswith("mb/")}
    voices = tuple(v for v in ENGLISH_VOICES if v in own)
    variant_dir = Path(data_dir.group(1).strip()) / "voices" / "!v" if data_dir else None
    variants = tuple(v for v in VARIANTS if variant_dir is None or (variant_dir / v).is_file())
    if not voices or not variants:
        raise DataError(
            f"{binary}: no usable English voices/variants found (is espeak-ng complete?)"
        )
    return Inventory(binary, version.group(1) if version else "unknown", voices, variants)


def speak(binary: str, voice: Voice, text: str, rate: int | None = None) -> np.ndarray:
    """`text` spoken by `voice` as float32 mono at 16 kHz, untrimmed."""
    rate = voice.rate if rate is None else rate
    args = [binary, "--stdout", "-v", f"{voice.voice}+{voice.variant}", "-s", str(rate)]
    args += ["-p", str(voice.pitch), "-a", str(voice.amplitude), text]
    wav = _run(args)
    if len(wav) < 44 or wav[:4] != b"RIFF" or wav[36:40] != b"data":
        raise DataError(
            f"espeak-ng gave no WAV output for {text!r} ({voice.voice}+{voice.variant})"
        )
    source_rate = int.from_bytes(wav[24:28], "little")
    pcm = np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], dtype="<i2")  # (T,)
    return resample(pcm.astype(np.float32) / PCM_SCALE, source_rate, SAMPLE_RATE)


def trim_silence(wave: np.ndarray, floor_db: float = SILENCE_DB) -> np.ndarray:
    """Cut leading and trailing frames quieter than `floor_db` below the loudest 10 ms frame."""
    frames = wave[: wave.shape[0] // FRAME * FRAME].reshape(-1, FRAME)  # (F, FRAME)
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)  # (F,)
    if energy.size == 0 or energy.max() <= 0.0:
        return wave[:0]
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (floor_db / 10))
    return wave[loud[0] * FRAME : (loud[-1] + 1) * FRAME]


def utterance(binary: str, voice: Voice, text: str, max_samples: int) -> np.ndarray:
    """Trimmed speech of at most `max_samples`; too-long words are re-spoken faster."""
    rate = voice.rate
    for _ in range(4):
        speech = trim_silence(speak(binary, voice, text, rate))
        if speech.size == 0:
            raise DataError(f"espeak-ng produced silence for {text!r} ({voice.speaker_id})")
        if speech.shape[0] <= max_samples:
            return speech
        rate = min(MAX_RATE, int(np.ceil(rate * speech.shape[0] / (0.95 * max_samples))))
    raise DataError(
        f"{text!r} does not fit in {max_samples / SAMPLE_RATE:.2f} s even at {rate} wpm"
    )


def _run(args: list[str]) -> bytes:
    try:
        done = subprocess.run(args, capture_output=True, check=False)
    except OSError as exc:
        raise DataError(f"cannot run {args[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise DataError(f"{args[0]} failed on {args[-1]!r} (exit {done.returncode}): {reason[-1]}")
    return done.stdout
