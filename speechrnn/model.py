"""StackedLSTMClassifier (pure torch): MFCC front end, conv stem, LSTM stack, pooling, head;
causal variants (the listener) also run as a stream: state in, per-step logits and state out."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from speechrnn.audio import SILENCE_PEAK
from speechrnn.errors import ConfigError
from speechrnn.features import MFCC, FeatureConfig, SpecAugment
from speechrnn.labels import SILENCE, UNKNOWN, is_keyword
from speechrnn.metadata import DETECTOR_KEY, model_metadata

POOLINGS = ("last", "mean", "attention")
MASK_DOMAINS = ("mfcc", "mel")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and its training-only regularisers (dropout, frequency warp, SpecAugment).

    The defaults are the default recipe (conf/model/lstm.yaml): a convolutional stem stepping
    every third frame under two bidirectional 128-unit LSTM layers, mean-pooled. `causal` makes
    the listener (conf/model/listener.yaml): causal front end and stem, a unidirectional LSTM
    with logits at every step, no look-ahead beyond the step's own audio.
    """

    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.1
    proj_size: int = 0
    pooling: str = "mean"
    freq_masks: int = 2
    freq_mask_width: int = 7
    time_masks: int = 2
    time_mask_width: int = 0
    freq_warp: float = 0.0  # training only: frequency axis scaled by U(1 - x, 1 + x) per clip
    mask_domain: str = "mfcc"  # SpecAugment masks cepstral coefficients or log-mel bands
    frame_stack: int = 1  # the LSTM steps over groups of this many consecutive frames
    conv_channels: int = 16  # > 0: a 3x3 convolution stem over the log-mel frames (ConvStem)
    conv_stride: int = 3  # the stem's step in frames
    causal: bool = False  # a streaming listener: per-step logits, no look-ahead

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "frame_stack", "conv_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.proj_size < self.hidden_size:
            raise ConfigError(
                f"model.proj_size must be in [0, hidden_size={self.hidden_size}), "
                f"got {self.proj_size}"
            )
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"model.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}"
            )
        if self.mask_domain not in MASK_DOMAINS:
            raise ConfigError(
                f"model.mask_domain must be one of {', '.join(MASK_DOMAINS)}, "
                f"got {self.mask_domain!r}"
            )
        if not 0.0 <= self.freq_warp < 1.0:
            raise ConfigError(f"model.freq_warp must be in [0, 1), got {self.freq_warp}")
        masks = ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width")
        for name in (*masks, "conv_channels"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} cannot be negative, got {getattr(self, name)}")
        if self.causal and (self.bidirectional or self.pooling == "attention"):
            raise ConfigError(
                "model.causal needs model.bidirectional=false and no attention pooling "
                "(a listener reads no future and scores every step)"
            )

    @property
    def output_size(self) -> int:
        return (self.proj_size or self.hidden_size) * (2 if self.bidirectional else 1)


class ConvStem(nn.Module):
    """(B, F, bands) log-mel frames -> (B, ceil(F / stride), channels * ceil(bands / 4)).

    Two 3x3 convolutions, each with batch norm and ReLU, each halving the mel bands; the second
    also steps `stride` frames in time. Every output step sees 5 neighbouring frames and bands.
    Causal: no padding in time; after `past` = 5 - stride frames of context, F new frames give
    F // stride steps, step k reading new frames k * stride + stride - 5 ... (k + 1) * stride - 1.
    """

    def __init__(self, bands: int, channels: int, stride: int, causal: bool = False) -> None:
        super().__init__()
        padding = (0, 1) if causal else 1
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=(1, 2), padding=padding, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=(stride, 2), padding=padding, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.output_size = channels * ((bands + 3) // 4)
        self.past = 5 - stride  # causal: frames of context before the new ones (< 0: skipped)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        maps = self.layers(frames[:, None])  # (B, channels, F', bands')
        return maps.transpose(1, 2).flatten(2)  # (B, F', channels * bands')


class AttentionPool(nn.Module):
    """Learned additive attention over time: (B, F, D) -> (B, D)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(size, size), nn.Tanh(), nn.Linear(size, 1))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        weights = self.score(seq).softmax(dim=1)  # (B, F, 1)
        return (weights * seq).sum(dim=1)  # (B, D)


class StreamState(NamedTuple):
    """A causal model's state between two pieces of one stream (B streams at once)."""

    samples: torch.Tensor  # (B, n_fft - hop) the framing's past samples
    frames: torch.Tensor  # (B, past, n_mels) the stem's past log-mel frames
    h: torch.Tensor  # (layers, B, proj_size or hidden_size)
    c: torch.Tensor  # (layers, B, hidden_size)


class StackedLSTMClassifier(nn.Module):
    """(B, T) raw 16 kHz audio -> (B, classes) logits; the front end is part of the model.

    A causal model (the listener) also streams: `stream(wave, state)` takes whole steps of
    `step_samples` and returns the logits of each step (complete once its own last sample has
    arrived: no look-ahead) and the next state; `frame_logits` is the same from a fresh state.
    """

    def __init__(self, labels: list[str], features: FeatureConfig, config: ModelConfig) -> None:
        super().__init__()
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ConfigError(f"a model needs at least two distinct labels, got {labels}")
        self.labels = list(labels)
        self.feature_config = features
        self.config = config
        self.mfcc = MFCC(features, config.freq_warp, config.causal)
        self.specaugment = SpecAugment(
            config.freq_masks, config.freq_mask_width, config.time_masks, config.time_mask_width
        )
        self.stem = (
            ConvStem(features.n_mels, config.conv_channels, config.conv_stride, config.causal)
            if config.conv_channels
            else None
        )
        step_size = self.stem.output_size if self.stem is not None else features.n_mfcc
        self.lstm = nn.LSTM(
            input_size=step_size * config.frame_stack,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            proj_size=config.proj_size,
        )
        self.attention = (
            AttentionPool(config.output_size) if config.pooling == "attention" else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.output_size, len(labels))
        silent = torch.zeros(len(labels))  # (classes,) logits for a clip without signal
        if SILENCE in labels:
            silent[labels.index(SILENCE)] = 50.0
        self.register_buffer("silent_logits", silent, persistent=False)
        keyword = torch.tensor([is_keyword(x) for x in labels])  # (classes,)
        self.register_buffer("keyword", keyword, persistent=False)

    @property
    def step_frames(self) -> int:
        """Frames per LSTM step."""
        stride = self.config.conv_stride if self.stem is not None else 1
        return stride * self.config.frame_stack

    @property
    def step_samples(self) -> int:
        """Samples per LSTM step: a causal model's logits come every this many samples."""
        return self.step_frames * self.feature_config.hop_length

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, frames, n_mfcc), SpecAugment applied in training mode."""
        if self.config.mask_domain == "mel":
            return self.mfcc(wave, self.specaugment)
        return self.specaugment(self.mfcc(wave))

    def steps(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, F, n_mfcc) -> (B, steps, LSTM input): through the stem when there is one, stacked."""
        if self.stem is not None:
            feats = self.stem(feats @ self.mfcc.dct.T)  # (B, F', C') from (B, F, n_mels) log-mel
        return self.stack(feats)

    def stack(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, F, C) -> (B, ceil(F / k), k * C): k consecutive frames per step, end zero-padded."""
        k = self.config.frame_stack
        if k == 1:
            return feats
        feats = nn.functional.pad(feats, (0, 0, 0, -feats.shape[1] % k))  # (B, k * steps, C)
        return feats.reshape(feats.shape[0], -1, k * feats.shape[2])  # (B, steps, k * C)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, classes). A causal model answers with the logits of its step where the
        probability of the keywords (every label but _silence_ and _unknown_; without those, of
        the top label) peaks, as a detector would fire there."""
        if self.config.causal:
            logits = self.pick_step(self.frame_logits(wave))  # (B, classes)
        else:
            seq, _ = self.lstm(self.steps(self.features(wave)))  # (B, steps, D)
            logits = self.head(self.dropout(self.pool(seq)))  # (B, classes)
        if SILENCE not in self.labels:
            return logits
        # Digital silence has no features to learn from: it is `_silence_`, in every path.
        quiet = wave.abs().amax(dim=1, keepdim=True) < SILENCE_PEAK  # (B, 1)
        return torch.where(quiet, self.silent_logits.to(logits.dtype), logits)

    def pick_step(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, steps, classes) -> (B, classes): the step where the keywords' probability peaks."""
        probs = logits.softmax(dim=-1)  # (B, steps, classes)
        fillers = SILENCE in self.labels or UNKNOWN in self.labels
        score = (probs * self.keyword).sum(-1) if fillers else probs.amax(-1)  # (B, steps)
        pick = score.argmax(dim=1)  # (B,)
        return logits[torch.arange(logits.shape[0], device=logits.device), pick]

    def initial_state(self, batch: int = 1) -> StreamState:
        """A causal model's state before a stream: digital silence in the past."""
        p = next(self.parameters())
        past = max(0, self.stem.past) if self.stem is not None else 0
        layers, hidden = self.config.num_layers, self.config.hidden_size
        floor = -self.feature_config.top_db / 2 / self.feature_config.scale_db  # silent log-mel
        return StreamState(
            p.new_zeros(batch, self.mfcc.lead),  # (B, n_fft - hop)
            p.new_full((batch, past, self.feature_config.n_mels), floor),  # (B, past, n_mels)
            p.new_zeros(layers, batch, self.config.proj_size or hidden),  # (L, B, H_out)
            p.new_zeros(layers, batch, hidden),  # (L, B, H)
        )

    def stream(self, wave: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """(B, n * step_samples) new audio and the state -> (B, n, classes) logits, next state."""
        if not self.config.causal:
            raise ConfigError("only a causal model (model.causal=true) can stream")
        audio = torch.cat([state.samples, wave.to(state.samples.dtype)], dim=1)  # (B, lead + T)
        feats = self.features(audio)  # (B, n * step_frames, n_mfcc)
        frames = state.frames
        if self.stem is not None:
            mel = torch.cat([frames, feats @ self.mfcc.dct.T], dim=1)  # (B, past + F, n_mels)
            frames = mel[:, mel.shape[1] - frames.shape[1] :]  # (B, past, n_mels)
            feats = self.stem(mel[:, max(0, -self.stem.past) :])  # (B, F / stride, C')
        seq, (h, c) = self.lstm(self.stack(feats), (state.h, state.c))  # (B, n, D)
        logits = self.head(self.dropout(seq))  # (B, n, classes)
        return logits, StreamState(audio[:, audio.shape[1] - self.mfcc.lead :], frames, h, c)

    def frame_logits(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T // step_samples, classes): a fresh stream's logits, whole steps only."""
        whole = wave.shape[1] // self.step_samples * self.step_samples
        return self.stream(wave[:, :whole], self.initial_state(wave.shape[0]))[0]

    def pool(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, F, D) -> (B, D) by the configured pooling."""
        if self.attention is not None:
            return self.attention(seq)
        if self.config.pooling == "mean":
            return seq.mean(dim=1)
        if not self.config.bidirectional:
            return seq[:, -1]
        half = seq.shape[-1] // 2
        return torch.cat([seq[:, -1, :half], seq[:, 0, half:]], dim=-1)  # (B, D)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def metadata(self) -> dict[str, Any]:
        """Everything besides the weights needed to rebuild this model: plain values only."""
        return model_metadata(self.labels, asdict(self.feature_config), asdict(self.config))

    def save(self, path: str | os.PathLike[str], detector: dict[str, Any] | None = None) -> Path:
        """Write a standalone checkpoint loadable with `torch.load(weights_only=True)`; a
        listener's operating point (OperatingPoint.to_metadata()) goes under `detector`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        extra = {} if detector is None else {DETECTOR_KEY: detector}
        torch.save({**self.metadata(), **extra, "state_dict": self.state_dict()}, tmp)
        tmp.replace(path)
        return path
