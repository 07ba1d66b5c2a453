"""The listener's detection stage as an add-on: training batches mixed into long sequences."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from speechrnn.augment import NoiseBank
from speechrnn.data.settings import DataConfig
from speechrnn.training.detection_loss import detection_loss, step_targets
from speechrnn.training.mixtures import DetectionConfig, Mixture, MixtureConfig, mix
from speechrnn.training.module import SpeechCommandsModule


class DetectionModule(SpeechCommandsModule):
    """Trains every step of a causal model on Mixture batches with detection_loss (max-pooling
    over each keyword, fillers elsewhere); validation and test stay per clip, as the plain
    module's."""

    def __init__(
        self,
        labels: list[str],
        features: dict[str, Any],
        model: dict[str, Any],
        optim: dict[str, Any],
        seed: int = 0,
        lead_ms: float = 150.0,
        tail_ms: float = 250.0,
        filler_weight: float = 2.0,
    ) -> None:
        super().__init__(labels, features, model, optim, seed)
        per_ms = self.model.feature_config.sample_rate / 1000.0
        self.lead, self.tail = round(lead_ms * per_ms), round(tail_ms * per_ms)
        self.filler_weight = filler_weight

    def training_step(self, batch: Mixture, batch_idx: int) -> torch.Tensor:
        wave, labels, spans = batch  # (B, clips * T), (B, clips), (B, clips, 2)
        logits = self.model.frame_logits(wave).float()  # (B, S, C)
        steps, step = logits.shape[1], self.model.step_samples
        names = self.model.labels
        targets = step_targets(labels, spans, names, steps, step, self.tail, self.lead)
        loss, parts = detection_loss(logits, targets, self.filler_weight)
        slots = labels.numel()
        self.log("train/loss", loss, prog_bar=True, batch_size=slots)
        for name, value in parts.items():
            self.log(f"train/{name}_loss", value, on_step=False, on_epoch=True, batch_size=slots)
        return loss


def mix_batch(
    waves: torch.Tensor,
    targets: torch.Tensor,
    labels: list[str],
    bank: NoiseBank,
    gen: torch.Generator,
    config: MixtureConfig,
) -> Mixture:
    """The data module's mixer: (N, T) training clips (`_silence_` first) and targets (N,) ->
    sequences of `config.clips` clips in a random order, the last one filled up with clips of
    the batch again (N need not be a multiple)."""
    n, device = waves.shape[0], waves.device
    order = torch.randperm(n, generator=gen, device=device)  # (N,)
    filled = -(-n // config.clips) * config.clips
    order = order[torch.arange(filled, device=device) % n]  # (B * clips,)
    return mix(waves[order], targets[order], labels, bank, config, gen)


def training_data(data: DataConfig, detection: DetectionConfig) -> DataConfig:
    """The data settings of the detection stage's training plan: its own `_unknown_` and
    `_silence_` shares where the task has those labels (validation and test keep data's)."""
    unknown = detection.unknown_share if data.unknown_share > 0 else 0.0
    silence = detection.silence_share if data.silence_share > 0 else 0.0
    return replace(data, unknown_share=unknown, silence_share=silence)
