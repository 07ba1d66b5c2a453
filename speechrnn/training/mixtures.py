"""Long training sequences for the listener (1 s clips end to end over continuous noise) and the
detection stage's settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch

from speechrnn.audio import CLIP_SAMPLES
from speechrnn.augment import NoiseBank, change_speed
from speechrnn.errors import ConfigError
from speechrnn.evaluation.longform import SPEECH_RANGE_DB
from speechrnn.inference.streaming import FRAME, FRAME_HOP
from speechrnn.labels import SILENCE, UNKNOWN

CUT_RANGE = (0.3, 0.7)  # a cut word keeps this share of its speech, uniform


@dataclass(frozen=True)
class MixtureConfig:
    """How clips become one training sequence (levels in dB, RMS re full scale)."""

    section: ClassVar[str] = "mixture"  # what its error lines call it
    clips: int = 8  # 1 s clips per sequence
    snr_db: tuple[float, float] = (0.0, 25.0)  # each word's speech over the background, uniform
    noise_db: tuple[float, float] = (-55.0, -25.0)  # the background's RMS per sequence, uniform
    cut_share: float = 0.1  # command clips cut inside the word: `_unknown_` hard negatives
    quiet_share: float = 0.5  # `_silence_` clips dropped: their slot is the background alone
    speed: float = 0.15  # playback rate uniform in [1 - speed, 1 + speed] per clip

    def __post_init__(self) -> None:
        key = self.section
        if self.clips < 1:
            raise ConfigError(f"{key}.clips must be at least 1, got {self.clips}")
        for name in ("snr_db", "noise_db"):
            low, high = value = getattr(self, name)
            if not low <= high:
                raise ConfigError(f"{key}.{name} must be [low, high], got {value}")
        for name in ("cut_share", "quiet_share"):
            if not 0.0 <= (value := getattr(self, name)) <= 1.0:
                raise ConfigError(f"{key}.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.speed <= 0.3:
            raise ConfigError(f"{key}.speed must be in [0, 0.3], got {self.speed}")


@dataclass(frozen=True)
class DetectionConfig(MixtureConfig):
    """The `detection:` section: the listener's detection stage, its mixtures, step targets and
    training shares (the defaults: the best measured recipe, docs/training.md)."""

    section: ClassVar[str] = "detection"
    clips: int = 4
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_db: tuple[float, float] = (-55.0, -30.0)
    cut_share: float = 0.2
    enabled: bool = False  # train on mixtures with detection_loss (needs model.causal)
    lead_ms: float = 150.0  # a keyword may fire from this long before its speech ends ...
    tail_ms: float = 250.0  # ... until this long after it
    filler_weight: float = 2.0  # detection_loss's weight of the `_silence_`/`_unknown_` steps
    unknown_share: float = 0.64  # training `_unknown_` clips per known clip (0.35 of the slots)
    silence_share: float = 0.18  # training `_silence_` clips per known clip (0.1 of the slots)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lead_ms", "tail_ms", "filler_weight"):
            if (value := getattr(self, name)) < 0:
                raise ConfigError(f"detection.{name} cannot be negative, got {value}")
        for name in ("unknown_share", "silence_share"):
            if not 0.0 <= (value := getattr(self, name)) <= 1.0:
                raise ConfigError(f"detection.{name} must be in [0, 1], got {value}")

    def check_run(self, causal: bool, mixup: float, teachers: Sequence[str]) -> None:
        """One line for what the detection stage cannot train with."""
        if not self.enabled:
            return
        if not causal:
            raise ConfigError(
                "detection.enabled=true trains a listener: set model=listener (model.causal=true)"
            )
        if teachers:
            raise ConfigError(
                "detection.enabled=true cannot distil: leave distil.teachers empty (distil the "
                "per-clip stage it starts from instead)"
            )
        if mixup > 0:
            raise ConfigError(
                "detection.enabled=true mixes clips into sequences itself: set optim.mixup=0"
            )


class Mixture(NamedTuple):
    """Training sequences and the words in them (slot k holds clip k of its sequence)."""

    wave: torch.Tensor  # (B, clips * T) float32 in [-1, 1]
    labels: torch.Tensor  # (B, clips) int64 label of each slot's word
    spans: torch.Tensor  # (B, clips, 2) int64 [start, end) samples of its speech; empty: none


def speech_spans(clips: torch.Tensor) -> torch.Tensor:
    """(N, T) clean clips -> (N, 2) [start, end) samples of their words, batched: the frames
    (25 ms every 10 ms) within SPEECH_RANGE_DB of each clip's loudest, as `speech_extent`."""
    frames = clips.unfold(1, FRAME, FRAME_HOP)  # (N, F, FRAME)
    level = 10.0 * torch.log10(frames.square().mean(-1) + 1e-10)  # (N, F)
    active = level >= level.amax(dim=1, keepdim=True) - SPEECH_RANGE_DB  # (N, F)
    index = torch.arange(level.shape[1], device=clips.device)  # (F,)
    first = torch.where(active, index, level.shape[1]).amin(dim=1)  # (N,)
    last = torch.where(active, index, -1).amax(dim=1)  # (N,)
    end = (last * FRAME_HOP + FRAME).clamp(max=clips.shape[1])  # (N,)
    return torch.stack([first * FRAME_HOP, end], dim=1)  # (N, 2)


def long_crops(bank: NoiseBank, n: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    """(n, samples) crops of the bank's recordings at random offsets, looped where too short,
    each scaled to RMS 1."""
    device = bank.device
    files = torch.randint(len(bank.names), (n,), generator=gen, device=device)  # (n,)
    lengths = bank.spans[files] + CLIP_SAMPLES - 1  # (n,) samples of each recording
    offsets = (torch.rand(n, generator=gen, device=device) * lengths).long()  # (n,)
    steps = torch.arange(samples, device=device)  # (samples,)
    where = bank.starts[files, None] + (offsets[:, None] + steps) % lengths[:, None]
    crops = bank.flat[where]  # (n, samples)
    return crops / crops.square().mean(dim=1, keepdim=True).sqrt().clamp_min(1e-8)


def mix(
    clips: torch.Tensor,
    targets: torch.Tensor,
    labels: Sequence[str],
    bank: NoiseBank,
    config: MixtureConfig,
    gen: torch.Generator,
) -> Mixture:
    """(B * clips, T) clips in [-1, 1] with their targets (B * clips,) -> B sequences.

    Every word (a clip that is not `_silence_`) is sped up or slowed down, endpointed, scaled
    so its speech stands a random SNR over the sequence's background and, for a `cut_share` of
    the commands, cut off inside the word and relabelled `_unknown_`. `_silence_` clips (noise
    cuts at their own levels) keep their level, or for a `quiet_share` of them give way to the
    background alone, and get no span. The background is one noise crop per sequence at a
    random level, continuous across the clips.
    """
    n, samples = clips.shape
    batch, device = n // config.clips, clips.device
    if batch * config.clips != n:
        raise ValueError(f"{n} clips do not make sequences of {config.clips}")
    targets = targets.clone()
    silent = targets == (labels.index(SILENCE) if SILENCE in labels else -1)  # (N,)
    dropped = silent & (torch.rand(n, generator=gen, device=device) < config.quiet_share)
    clips = clips.masked_fill(dropped[:, None], 0.0)  # (N, T)
    if config.speed > 0:
        rate = 1.0 + config.speed * (2.0 * torch.rand(n, generator=gen, device=device) - 1.0)
        clips = torch.where(silent[:, None], clips, change_speed(clips, rate))  # (N, T)
    spans = speech_spans(clips)  # (N, 2)
    spans[silent] = 0
    filler = labels.index(UNKNOWN) if UNKNOWN in labels else -1
    fillers = torch.tensor([x in (SILENCE, UNKNOWN) for x in labels], device=device)  # (C,)
    cut = ~fillers[targets] & (torch.rand(n, generator=gen, device=device) < config.cut_share)
    if filler >= 0 and bool(cut.any()):
        low, high = CUT_RANGE
        keep = low + (high - low) * torch.rand(n, generator=gen, device=device)  # (N,)
        ends = spans[:, 0] + (keep * (spans[:, 1] - spans[:, 0])).long()  # (N,)
        after = torch.arange(samples, device=device) >= ends[:, None]  # (N, T)
        clips = clips.masked_fill(cut[:, None] & after, 0.0)
        spans[:, 1] = torch.where(cut, ends, spans[:, 1])
        targets[cut] = filler
    noise_db = _uniform(batch, config.noise_db, gen, device).repeat_interleave(config.clips)
    level = 10.0 ** ((noise_db + _uniform(n, config.snr_db, gen, device)) / 20.0)  # (N,)
    inside = torch.arange(samples, device=device)  # (T,)
    speech = (inside >= spans[:, :1]) & (inside < spans[:, 1:])  # (N, T)
    power = (clips.square() * speech).sum(1) / speech.sum(1).clamp_min(1)  # (N,)
    gain = torch.where(silent, 1.0, level / power.sqrt().clamp_min(1e-8))  # (N,)
    wave = (clips * gain[:, None]).reshape(batch, config.clips * samples)  # (B, clips * T)
    background = long_crops(bank, batch, wave.shape[1], gen)  # (B, clips * T)
    wave = wave + background * 10.0 ** (noise_db[:: config.clips, None] / 20.0)
    offsets = (torch.arange(n, device=device) % config.clips * samples)[:, None]  # (N, 1)
    spans = torch.where(spans[:, 1:] > spans[:, :1], spans + offsets, 0)  # (N, 2)
    return Mixture(
        wave.clamp(-1.0, 1.0),
        targets.reshape(batch, config.clips),
        spans.reshape(batch, config.clips, 2),
    )


def _uniform(
    n: int, bounds: tuple[float, float], gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=gen, device=device)  # (n,)
