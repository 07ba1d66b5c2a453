"""The one audio loader for training and inference: any soundfile format to float32 mono 16 kHz."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrnn.errors import AudioError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second
MAX_SECONDS = 3600.0  # longer input is refused rather than decoded into memory
PCM_SCALE = 32768.0  # int16 full scale: float = int16 / PCM_SCALE, as soundfile reads it


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = MAX_SECONDS,
) -> np.ndarray:
    """Decode a whole file to float32 mono at `sample_rate`; raise AudioError naming the problem."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_reason(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: empty audio (no samples)")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise AudioError(f"{path}: too long ({seconds:.0f} s; at most {max_seconds:.0f} s)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (no samples)")
    wave = data.mean(axis=1, dtype=np.float32)  # (T,)
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    wave = resample(wave, rate, sample_rate)
    if wave.size == 0:
        raise AudioError(f"{path}: no samples left after resampling to {sample_rate} Hz")
    return wave


def resample(wave: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality resampling (soxr) of a float32 mono signal; identity when rates match."""
    if rate == target:
        return np.ascontiguousarray(wave, dtype=np.float32)
    import soxr

    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32, copy=False)


def fit_clip(wave: np.ndarray, samples: int = CLIP_SAMPLES) -> np.ndarray:
    """Pad a short clip with trailing silence, or keep the loudest `samples`-long window."""
    if wave.shape[0] < samples:
        return np.pad(wave, (0, samples - wave.shape[0])).astype(np.float32, copy=False)
    if wave.shape[0] == samples:
        return wave
    energy = np.concatenate(([0.0], np.cumsum(wave.astype(np.float64) ** 2)))  # (T + 1,)
    window = energy[samples:] - energy[:-samples]  # (T - samples + 1,)
    start = int(np.argmax(window))
    return wave[start : start + samples]


def load_audio(path: str | os.PathLike[str], samples: int = CLIP_SAMPLES) -> np.ndarray:
    """One clip, as the model sees it in training and inference: float32 (samples,) at 16 kHz."""
    return fit_clip(read_audio(path), samples)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16, exact for audio that came from 16-bit PCM."""
    return np.clip(np.rint(wave * PCM_SCALE), -PCM_SCALE, PCM_SCALE - 1).astype(np.int16)


def _check_file(path: Path) -> None:
    """Name the problems libsndfile reports only as 'System error' or a misleading reason."""
    if path.is_symlink() and not path.exists():
        raise AudioError(f"{path}: broken or looping symbolic link")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():  # never open a FIFO or device: that could block
        raise AudioError(f"{path}: not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror})") from None
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[-1] if text else type(exc).__name__
    return reason.split(": ", 1)[-1] if reason.startswith("Error opening") else reason
