"""load_audio: formats, rates, channels, and the clear errors for unusable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn.audio import (
    CLIP_SAMPLES,
    fit_clip,
    load_audio,
    read_audio,
    resample,
    window_energy,
)
from speechrnn.errors import AudioError


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "fmt"),
    [
        (16000, 1, "PCM_16", "WAV"),
        (8000, 1, "PCM_16", "WAV"),
        (44100, 2, "PCM_24", "WAV"),
        (22050, 1, "FLOAT", "WAV"),
        (48000, 1, "PCM_32", "WAV"),
        (16000, 1, "PCM_16", "FLAC"),
        (16000, 2, "VORBIS", "OGG"),
    ],
)
def test_any_rate_channels_and_format_give_16k_mono(
    tmp_path: Path, rate: int, channels: int, subtype: str, fmt: str
) -> None:
    tone = _tone(0.5, rate)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, data, rate, subtype=subtype, format=fmt)
    wave = read_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.shape[0] - 8000) <= 2
    reference = _tone(0.5, 16000)[: wave.shape[0]]
    core = slice(400, wave.shape[0] - 400)  # away from resampler edges
    assert np.abs(wave[core] - reference[core]).max() < 0.05


def test_load_audio_pads_short_and_keeps_loudest_second() -> None:
    short = np.ones(4000, dtype=np.float32)
    padded = fit_clip(short)
    assert padded.shape == (CLIP_SAMPLES,) and padded[:4000].all() and not padded[4000:].any()
    long = np.zeros(40000, dtype=np.float32)
    long[25000:27000] = 1.0
    clip = fit_clip(long)
    assert clip.shape == (CLIP_SAMPLES,) and clip.sum() == 2000


@pytest.mark.parametrize(("width", "hop"), [(16, 1), (400, 160)])
def test_window_energy_in_blocks_equals_one_cumulative_sum(width: int, hop: int) -> None:
    wave = np.random.default_rng(width).standard_normal(5003).astype(np.float32)  # (T,)
    power = np.concatenate(([0.0], np.cumsum(wave.astype(np.float64) ** 2)))  # (T + 1,)
    count = -(-(wave.shape[0] - width + 1) // hop)
    begins = np.arange(count) * hop
    whole = power[np.minimum(begins + width, wave.shape[0])] - power[begins]
    blocks = list(window_energy(wave, width, hop, count, block=7))
    assert [first for first, _ in blocks] == list(range(0, count, 7))
    np.testing.assert_array_equal(np.concatenate([e for _, e in blocks]), whole)


def test_fit_clip_finds_the_loudest_second_across_blocks() -> None:
    wave = np.random.default_rng(1).uniform(-0.1, 0.1, 2_500_000).astype(np.float32)  # 3 blocks
    wave[2_300_000:2_300_500] = 0.9
    power = np.concatenate(([0.0], np.cumsum(wave.astype(np.float64) ** 2)))
    start = int(np.argmax(power[CLIP_SAMPLES:] - power[:-CLIP_SAMPLES]))
    np.testing.assert_array_equal(fit_clip(wave), wave[start : start + CLIP_SAMPLES])


def test_load_audio_returns_one_second(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _tone(0.3, 16000), 16000, subtype="PCM_16")
    assert load_audio(path).shape == (CLIP_SAMPLES,)


def test_resample_identity_and_length() -> None:
    x = _tone(1.0, 8000)
    assert resample(x, 16000, 16000) is not None
    assert resample(x, 8000).shape[0] == 16000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        (lambda p: p.symlink_to(p.with_name("gone.wav")), "broken or looping symbolic link"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "cannot decode"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "cannot decode"),
        (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
        (lambda p: sf.write(p, np.full(100, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: p.mkdir(), "not a file"),
    ],
)
def test_bad_files_raise_one_clear_line(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as info:
        read_audio(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_too_long_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 3, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="too long"):
        read_audio(path, max_seconds=2.0)
