"""Training augmentation as seeded batched ops on the batch's device: speed, shift, noise, gain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE
from speechrnn.errors import ConfigError

SILENCE_PEAK_DB = (-40.0, 0.0)  # _silence_ clip peaks: log-uniform from near 0 to full scale


@dataclass(frozen=True)
class AugmentConfig:
    """The `augment:` section; noise volume is relative to full scale (crops peak-normalised)."""

    time_shift_ms: float = 0.0
    noise_prob: float = 0.8
    noise_volume: float = 0.3
    gain_db: float = 0.0
    speed: float = 0.25  # playback rate uniform in [1 - speed, 1 + speed]; pitch moves with it

    def __post_init__(self) -> None:
        if not 0.0 <= self.time_shift_ms <= 500.0:
            raise ConfigError(
                f"augment.time_shift_ms must be in [0, 500], got {self.time_shift_ms}"
            )
        for name in ("noise_prob", "noise_volume"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.gain_db <= 40.0:
            raise ConfigError(f"augment.gain_db must be in [0, 40], got {self.gain_db}")
        if not 0.0 <= self.speed <= 0.3:
            raise ConfigError(f"augment.speed must be in [0, 0.3], got {self.speed}")

    @property
    def shift_samples(self) -> int:
        return round(SAMPLE_RATE * self.time_shift_ms / 1000)


class NoiseBank:
    """Noise recordings as one flat tensor, served as 1 s crops normalised to peak 1."""

    def __init__(
        self, flat: torch.Tensor, starts: torch.Tensor, spans: torch.Tensor, names: Sequence[str]
    ) -> None:
        self.flat = flat  # (L,) all recordings end to end
        self.starts = starts  # (F,) where each recording begins in flat
        self.spans = spans  # (F,) number of 1 s crop positions in each
        self.names = tuple(names)

    @classmethod
    def from_waves(cls, waves: Sequence[np.ndarray], names: Sequence[str]) -> NoiseBank:
        """A bank on the CPU from float32 recordings; ones shorter than 1 s are looped."""
        if not waves or len(waves) != len(names):
            raise ValueError("a noise bank needs at least one recording and one name each")
        pieces = [torch.from_numpy(np.array(w, np.float32)) for w in waves]
        pieces = [p.repeat(-(-CLIP_SAMPLES // max(p.numel(), 1))) for p in pieces]
        lengths = torch.tensor([p.numel() for p in pieces])  # (F,)
        starts = torch.cumsum(lengths, 0) - lengths  # (F,)
        return cls(torch.cat(pieces), starts, lengths - CLIP_SAMPLES + 1, names)

    @classmethod
    def generated(cls, seconds: float = 10.0, seed: int = 0) -> NoiseBank:
        """White and pink noise, for corpora without `_background_noise_`."""
        rng = np.random.default_rng(seed)
        white = rng.standard_normal(int(seconds * SAMPLE_RATE))  # (T,)
        spectrum = np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(white.size // 2 + 1), 1))
        pink = np.fft.irfft(spectrum, white.size)  # (T,)
        waves = [(0.5 * w / np.abs(w).max()).astype(np.float32) for w in (white, pink)]
        return cls.from_waves(waves, ["generated_white", "generated_pink"])

    @property
    def device(self) -> torch.device:
        return self.flat.device

    def to(self, device: torch.device | str) -> NoiseBank:
        tensors = (t.to(device) for t in (self.flat, self.starts, self.spans))
        return NoiseBank(*tensors, self.names)

    def crops(
        self, n: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """n random 1 s crops, the factors that bring each to peak 1, file indices, offsets."""
        files = torch.randint(len(self.names), (n,), generator=gen, device=self.device)  # (n,)
        offsets = (torch.rand(n, generator=gen, device=self.device) * self.spans[files]).long()
        windows = self.flat.unfold(0, CLIP_SAMPLES, 1)  # (L - T + 1, T), a view
        crops = windows[self.starts[files] + offsets]  # (n, T)
        low, high = torch.aminmax(crops, dim=1, keepdim=True)  # (n, 1) each
        to_unit = 1.0 / torch.maximum(high, -low).clamp_min(1e-8)  # (n, 1)
        return crops, to_unit, files, offsets

    def silence(
        self, n: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n `_silence_` clips: noise crops with peaks log-uniform over SILENCE_PEAK_DB."""
        crops, to_unit, files, offsets = self.crops(n, gen)
        low, high = SILENCE_PEAK_DB
        db = low + (high - low) * torch.rand(n, 1, generator=gen, device=self.device)  # (n, 1)
        return crops * (to_unit * 10.0 ** (db / 20.0)), files, offsets


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A well-mixed 63-bit seed for one training batch: its draws depend on nothing else."""
    return int(np.random.SeedSequence([seed, epoch, batch]).generate_state(1, np.uint64)[0] >> 1)


def time_shift(wave: torch.Tensor, shifts: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Row i moved later by shifts[i] samples (earlier if negative), zero-filled; |shift| <= max."""
    batch, samples = wave.shape
    padded = F.pad(wave, (max_shift, max_shift))  # (B, T + 2S)
    windows = padded.unfold(1, samples, 1)  # (B, 2S + 1, T), a view
    rows = torch.arange(batch, device=wave.device)  # (B,)
    return windows[rows, max_shift - shifts]  # (B, T)


def change_speed(wave: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """Row i played rates[i] times as fast about its centre (linear interpolation, zero-filled)."""
    samples = wave.shape[1]
    centre = (samples - 1) / 2
    steps = torch.arange(samples, device=wave.device, dtype=wave.dtype) - centre  # (T,)
    where = steps * (rates[:, None] / centre)  # (B, T) source positions, -1..1 = first..last
    grid = torch.stack([where, torch.zeros_like(where)], dim=-1)[:, None]  # (B, 1, T, 2)
    image = wave[:, None, None, :]  # (B, 1, 1, T): grid_sample's fused linear interpolation
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[:, 0, 0]  # (B, T)


def mix_noise(
    wave: torch.Tensor, bank: NoiseBank, prob: float, volume: float, gen: torch.Generator
) -> torch.Tensor:
    """Add a noise crop at gain U(0, volume) to each row with probability `prob`."""
    batch = wave.shape[0]
    noise, to_unit, _, _ = bank.crops(batch, gen)  # (B, T), (B, 1)
    gain = volume * torch.rand(batch, 1, generator=gen, device=wave.device)  # (B, 1)
    used = torch.rand(batch, 1, generator=gen, device=wave.device) < prob  # (B, 1)
    return torch.addcmul(wave, noise, gain * used * to_unit)


def random_gain(wave: torch.Tensor, max_db: float, gen: torch.Generator) -> torch.Tensor:
    """Scale each row by a gain uniform in [-max_db, max_db] dB."""
    db = max_db * (2.0 * torch.rand(wave.shape[0], 1, generator=gen, device=wave.device) - 1.0)
    return wave * 10.0 ** (db / 20.0)


def mixup(wave: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix each row with a shuffled partner at weight lam ~ Beta(alpha, alpha) (torch's RNG).

    Returns the mixed (B, T), the partner of each row (B,) and lam, the weight of the row itself.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(wave.shape[0], device=wave.device)  # (B,)
    return lam * wave + (1.0 - lam) * wave[partner], partner, lam


def augment(
    wave: torch.Tensor, config: AugmentConfig, bank: NoiseBank | None, gen: torch.Generator
) -> torch.Tensor:
    """(B, T) float32 in [-1, 1] -> augmented (B, T), clipped to [-1, 1]; `gen` on wave's device."""
    if config.speed > 0:
        low, high = 1.0 - config.speed, 1.0 + config.speed
        rates = low + (high - low) * torch.rand(wave.shape[0], generator=gen, device=wave.device)
        wave = change_speed(wave, rates)
    shift = config.shift_samples
    if shift:
        size = (wave.shape[0],)
        shifts = torch.randint(-shift, shift + 1, size, generator=gen, device=wave.device)  # (B,)
        wave = time_shift(wave, shifts, shift)
    if bank is not None and config.noise_prob > 0 and config.noise_volume > 0:
        wave = mix_noise(wave, bank, config.noise_prob, config.noise_volume, gen)
    if config.gain_db > 0:
        wave = random_gain(wave, config.gain_db, gen)
    return wave.clamp(-1.0, 1.0)
