"""The one audio loader for training and inference: any soundfile format to float32 mono 16 kHz.

Files are decoded and resampled in blocks, so memory is the 16 kHz output plus one block,
whatever the input's rate; a header that declares more than the limits is refused unread.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from speechrnn.errors import AudioError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second
MAX_SECONDS = 3600.0  # longer input is refused rather than decoded into memory
SILENCE_PEAK = 1e-4  # a clip whose peak stays below this (-80 dBFS) carries no signal: `_silence_`
PCM_SCALE = 32768.0  # int16 full scale: float = int16 / PCM_SCALE, as soundfile reads it
MAX_INPUT_SAMPLES = int(MAX_SECONDS) * 192_000 * 2  # one hour of 192 kHz stereo, all channels
BLOCK_FRAMES = 1 << 16  # input frames decoded (and resampled) at a time


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = MAX_SECONDS,
) -> np.ndarray:
    """Decode a whole file to float32 mono at `sample_rate`; raise AudioError naming the problem."""
    path = Path(path)
    _check_file(path)
    return _read(str(path), str(path), sample_rate, max_seconds)


def decode_audio(
    data: bytes, name: str, sample_rate: int = SAMPLE_RATE, max_seconds: float = MAX_SECONDS
) -> np.ndarray:
    """Decode an in-memory file (an upload) as `read_audio` decodes files; errors name `name`."""
    if not data:
        raise AudioError(f"{name}: empty file (0 bytes)")
    return _read(data, name, sample_rate, max_seconds)


def _read(source: str | bytes, name: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """A file's path or an upload's bytes: header checked against the limits, then decoded
    blockwise; errors name `name`."""
    try:
        info = sf.info(_opened(source))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot decode audio ({_reason(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise AudioError(f"{name}: too long ({seconds:.0f} s; at most {max_seconds:.0f} s)")
    if info.frames * info.channels > MAX_INPUT_SAMPLES:
        raise AudioError(
            f"{name}: too large ({info.frames * info.channels:,} samples declared: {seconds:.0f} s "
            f"at {info.samplerate} Hz x {info.channels} channels; at most {MAX_INPUT_SAMPLES:,})"
        )
    if info.format == "WAV":
        frame_bytes = info.channels * _sample_bytes(info.subtype)
        _check_complete(source, name, frame_bytes, info.samplerate)
    try:
        wave = _decode(source, info.frames, info.samplerate, sample_rate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot decode audio ({_reason(exc)})") from None
    if wave is None:
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if wave.size == 0:
        raise AudioError(f"{name}: no samples left after resampling to {sample_rate} Hz")
    return wave


def _opened(source: str | bytes) -> str | BinaryIO:
    """What soundfile reads: a path as it is (libsndfile opens it), bytes as an in-memory file."""
    return source if isinstance(source, str) else io.BytesIO(source)


def _decode(source: str | bytes, frames: int, rate: int, target: int) -> np.ndarray | None:
    """Blocks of (frames, channels) -> mono -> resampled into one preallocated float32 array;
    None when a sample is NaN or infinite."""
    import soxr

    stream = None if rate == target else soxr.ResampleStream(rate, target, 1, "float32", "HQ")
    out = np.empty(int(frames * target / rate) + 64, np.float32)  # (T_out,) grown if short
    filled = 0
    with sf.SoundFile(_opened(source)) as audio:
        for block in audio.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):  # (b, ch)
            mono = block.mean(axis=1, dtype=np.float32)  # (b,)
            if not np.isfinite(mono).all():
                return None
            chunk = mono if stream is None else stream.resample_chunk(mono)
            out, filled = _append(out, filled, chunk)
        if stream is not None:
            out, filled = _append(out, filled, stream.resample_chunk(np.zeros(0, np.float32), True))
    return out[:filled]


def _append(out: np.ndarray, filled: int, chunk: np.ndarray) -> tuple[np.ndarray, int]:
    if filled + chunk.size > out.size:
        out = np.concatenate([out[:filled], np.empty(max(out.size, chunk.size), np.float32)])
    out[filled : filled + chunk.size] = chunk
    return out, filled + chunk.size


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
    best, start = -1.0, 0
    for first, energy in window_energy(wave, samples, 1, wave.shape[0] - samples + 1):
        i = int(np.argmax(energy))
        if energy[i] > best:  # the first loudest window, as one argmax over all would pick
            best, start = float(energy[i]), first + i
    return wave[start : start + samples]


def window_energy(
    wave: np.ndarray, width: int, hop: int, count: int, block: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(first index, float64 energies) of windows i = 0..count-1, samples [i*hop, i*hop + width)
    clipped to (T,) `wave`, `block` windows at a time (default: about 2**20 samples' worth).

    Each energy is a difference of one running sum of squares, carried from block to block, so
    the values equal those of a whole-file cumulative sum while memory stays one block.
    """
    block = block or max(1, (1 << 20) // hop)
    carry = 0.0  # the running sum up to the current block's first sample
    for first in range(0, count, block):
        begins = np.arange(first, min(count, first + block), dtype=np.int64) * hop  # (b,)
        ends = np.minimum(begins + width, wave.shape[0])  # (b,)
        lo, hi = int(begins[0]), int(ends.max())
        power = np.cumsum(np.concatenate(([carry], wave[lo:hi].astype(np.float64) ** 2)))
        yield first, power[ends - lo] - power[begins - lo]  # (b,)
        carry = float(power[min(hi, lo + block * hop) - lo])


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


_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
_SAMPLE_BYTES |= {"DOUBLE": 8, "ULAW": 1, "ALAW": 1}


def _sample_bytes(subtype: str) -> int:
    return _SAMPLE_BYTES.get(subtype, 0)


def _check_complete(source: str | bytes, name: str, frame_bytes: int, rate: int) -> None:
    """Refuse a RIFF WAV whose data chunk ends before its header says (a cut-off file)."""
    try:
        with open(source, "rb") if isinstance(source, str) else io.BytesIO(source) as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(0)
            if handle.read(12)[:4] != b"RIFF":
                return  # RF64 and others: sizes live elsewhere
            for _ in range(64):  # chunks before `data`
                header = handle.read(8)
                if len(header) < 8:
                    return
                kind, length = header[:4], struct.unpack("<I", header[4:])[0]
                if kind == b"data":
                    held = size - handle.tell()
                    break
                handle.seek(length + (length & 1), os.SEEK_CUR)
            else:
                return
    except OSError as exc:
        raise AudioError(f"{name}: cannot read ({exc.strerror})") from None
    if length in (0, 0xFFFFFFFF) or length <= held:  # 0 / all ones: size left unknown by a stream
        return
    whole = f" ({held / frame_bytes / rate:.2f} of {length / frame_bytes / rate:.2f} s)"
    raise AudioError(
        f"{name}: truncated WAV: its data chunk declares {length} bytes but the file holds "
        f"{held}{whole if frame_bytes else ''}; re-export or re-download it"
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[-1] if text else type(exc).__name__
    return reason.split(": ", 1)[-1] if reason.startswith("Error opening") else reason
