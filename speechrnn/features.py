"""The model's front end: per-clip or causal MFCC (torchaudio), frequency warping, SpecAugment."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from speechrnn.errors import ConfigError

NORMALIZATIONS = ("mean", "meanvar", "none")


@dataclass(frozen=True)
class FeatureConfig:
    """MFCC settings; saved in every checkpoint so inference computes exactly these features."""

    sample_rate: int = 16_000
    n_mfcc: int = 40
    n_mels: int = 40
    n_fft: int = 512
    win_ms: float = 30.0
    hop_ms: float = 10.0
    f_min: float = 20.0
    f_max: float = 7_600.0
    top_db: float = 60.0  # floor below the clip's loudest bin (causal: below full scale)
    normalize: str = "mean"  # per clip: "mean" (subtract), "meanvar" (and unit std), "none"
    scale_db: float = 10.0  # dB per feature unit after normalisation ("mean" and "none")

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"features.normalize must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalize!r}"
            )
        names = ("sample_rate", "n_mfcc", "n_mels", "n_fft", "win_ms", "hop_ms", "top_db")
        for name in (*names, "scale_db"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"features.{name} must be positive, got {getattr(self, name)}")
        if self.n_mfcc > self.n_mels:
            raise ConfigError(
                f"features.n_mfcc ({self.n_mfcc}) cannot exceed features.n_mels ({self.n_mels})"
            )
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"features.win_ms gives {self.win_length} samples, more than n_fft={self.n_fft}"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ConfigError(
                f"features: need 0 <= f_min < f_max <= {self.sample_rate / 2:g} Hz, "
                f"got f_min={self.f_min}, f_max={self.f_max}"
            )

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    def num_frames(self, samples: int) -> int:
        return samples // self.hop_length + 1


class MFCC(nn.Module):
    """(B, T) waveforms -> (B, frames, n_mfcc); each clip's features ignore its batch mates.

    Per clip (default): frames centred on every hop (reflect-padded ends), floored `top_db`
    below the clip's loudest bin, normalised by `normalize`. Causal: frame t is the n_fft
    samples ending at (t + 1) * hop of the input as given (the caller supplies the n_fft - hop
    samples of past, `lead` below), floored `top_db` below the level of a full-scale sine,
    centred in that range and never normalised by clip statistics: no look-ahead beyond a frame.
    """

    def __init__(self, config: FeatureConfig, warp: float = 0.0, causal: bool = False) -> None:
        super().__init__()
        self.config, self.warp, self.causal = config, warp, causal
        with torch.device("cpu"):  # no parameters: built on the CPU even inside a meta context
            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=config.sample_rate,
                n_fft=config.n_fft,
                win_length=config.win_length,
                hop_length=config.hop_length,
                f_min=config.f_min,
                f_max=config.f_max,
                n_mels=config.n_mels,
                power=2.0,
                center=not causal,
                pad_mode="reflect",
                norm=None,
                mel_scale="htk",
            )
            dct = torchaudio.functional.create_dct(config.n_mfcc, config.n_mels, "ortho")
        self.register_buffer("dct", dct, persistent=False)  # (n_mels, n_mfcc)
        # A full-scale sine on a bin's centre: |X|^2 = (sum(window) / 2)^2, in dB.
        self.full_scale_db = 20.0 * math.log10(float(self.mel.spectrogram.window.sum()) / 2.0)

    @property
    def lead(self) -> int:
        """Samples of past that causal framing needs before the first frame's hop."""
        return self.config.n_fft - self.config.hop_length

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, n_fft // 2 + 1, frames) power spectrum, as torchaudio's Spectrogram
        computes it but summing re^2 + im^2: complex abs() is about 5x slower on the CPU."""
        stft = self.mel.spectrogram
        spec = torch.stft(
            wave,
            n_fft=stft.n_fft,
            hop_length=stft.hop_length,
            win_length=stft.win_length,
            window=stft.window,
            center=not self.causal,
            pad_mode="reflect",
            return_complex=True,
        )  # (B, n_fft // 2 + 1, frames) complex
        return spec.real.square() + spec.imag.square()

    def forward(self, wave: torch.Tensor, mel_masks: nn.Module | None = None) -> torch.Tensor:
        """`mel_masks` (SpecAugment) masks log-mel bands (to their clip mean) before the DCT."""
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = self.power(wave.float())  # (B, n_fft // 2 + 1, frames)
            if self.training and self.warp > 0:
                factors = 1.0 + self.warp * (2.0 * torch.rand(len(spec), device=spec.device) - 1.0)
                spec = warp_frequencies(spec, factors)
            mel = self.mel.mel_scale(spec)  # (B, n_mels, frames)
            db = 10.0 * torch.log10(mel.clamp(min=1e-10))  # (B, n_mels, frames)
            if self.causal:
                top = self.config.top_db
                db = (db - self.full_scale_db).clamp(min=-top) + top / 2  # centred in range
            else:
                floor = db.amax(dim=(1, 2), keepdim=True) - self.config.top_db  # (B, 1, 1)
                db = torch.maximum(db, floor)
            db = db.transpose(1, 2)  # (B, frames, n_mels)
            if mel_masks is not None:
                mean = db.mean(dim=1, keepdim=True)  # (B, 1, n_mels)
                db = mel_masks(db - mean) + mean  # a masked band sits at its clip mean
            mfcc = db @ self.dct  # (B, frames, n_mfcc)
            if self.config.normalize != "none" and not self.causal:
                mfcc = mfcc - mfcc.mean(dim=1, keepdim=True)  # per clip and coefficient
            if self.config.normalize == "meanvar" and not self.causal:
                return mfcc / (mfcc.std(dim=1, keepdim=True) + 1e-5)
        return mfcc / self.config.scale_db


def warp_frequencies(spec: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Scale each clip's frequency axis (B, bins, frames) by factors (B,), as VTLP does.

    Output bin k reads the input at k / factor (linear interpolation, the top bin repeated), so a
    factor above 1 moves formants and pitch up, as a shorter vocal tract would.
    """
    bins = spec.shape[1]
    src = torch.arange(bins, device=spec.device) / factors[:, None]  # (B, bins)
    src = src.clamp(max=bins - 1)
    low = src.floor().long().clamp(max=bins - 2)  # (B, bins)
    frac = (src - low)[:, :, None]  # (B, bins, 1)
    frames = spec.shape[2]
    below = spec.gather(1, low[:, :, None].expand(-1, -1, frames))  # (B, bins, frames)
    above = spec.gather(1, (low + 1)[:, :, None].expand(-1, -1, frames))  # (B, bins, frames)
    return below + frac * (above - below)


class SpecAugment(nn.Module):
    """Zeroes random bands and time spans of (B, frames, coeffs or mel bands) in training mode."""

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        batch, frames, coeffs = feats.shape
        freq = _band_mask(batch, coeffs, self.freq_masks, self.freq_width, feats.device)  # (B, C)
        time = _band_mask(batch, frames, self.time_masks, self.time_width, feats.device)  # (B, F)
        mask = freq[:, None, :] | time[:, :, None]  # (B, F, C)
        return feats.masked_fill(mask, 0.0)


def _band_mask(batch: int, size: int, count: int, width: int, device: torch.device) -> torch.Tensor:
    """`count` bands per row, each of uniform width in [0, width], at uniform positions."""
    mask = torch.zeros(batch, size, dtype=torch.bool, device=device)  # (B, size)
    if count <= 0 or width <= 0:
        return mask
    pos = torch.arange(size, device=device)  # (size,)
    for _ in range(count):
        widths = torch.randint(0, min(width, size) + 1, (batch, 1), device=device)  # (B, 1)
        starts = (torch.rand(batch, 1, device=device) * (size - widths + 1)).floor()  # (B, 1)
        mask |= (pos >= starts) & (pos < starts + widths)
    return mask
