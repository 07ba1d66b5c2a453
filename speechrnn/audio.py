"""The one audio loader for training and inference: any soundfile format to float32 mono 16 kHz."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from speechrnn.errors import AudioError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second
MAX_SECONDS = 3600.0  # longer input is refused rather than decoded into memory


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = MAX_SECONDS,
) -> np.ndarray:
    """Decode a whole file to float32 mono at `sample_rate`; raise AudioError naming the problem."""
    path = Path(path)
    _check_file(path)
    return _decode(lambda: str(path), str(path), sample_rate, max_seconds)


def decode_audio(
    data: bytes, name: str, sample_rate: int = SAMPLE_RATE, max_seconds: float = MAX_SECONDS
) -> np.ndarray:
    """Decode an in-memory file (an upload) as `read_audio` decodes files; errors name `name`."""
    if not data:
        raise AudioError(f"{name}: empty file (0 bytes)")
    return _decode(lambda: io.BytesIO(data), name, sample_rate, max_seconds)


def _decode(
    open_source: Callable[[], str | BinaryIO], name: str, sample_rate: int, max_seconds: float
) -> np.ndarray:
    try:
        info = sf.info(open_source())
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot decode audio ({_reason(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise AudioError(f"{name}: too long ({seconds:.0f} s; at most {max_seconds:.0f} s)")
    try:
        data, rate = sf.read(open_source(), dtype="float32", always_2d=True)  # (T, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot decode audio ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    wave = data.mean(axis=1, dtype=np.float32)  # (T,)
    if not np.isfinite(wave).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    wave = resample(wave, rate, sample_rate)
    if wave.size == 0:
        raise AudioError(f"{name}: no samples left after resampling to {sample_rate} Hz")
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
