"""LightningModule around StackedLSTMClassifier: loss, AdamW, LR schedule, accuracy metrics."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from speechrnn.augment import batch_seed, mixup
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, StackedLSTMClassifier
from speechrnn.training.settings import OptimConfig


class SpeechCommandsModule(L.LightningModule):
    """Trains the classifier on (waves (B, T), targets (B,)) batches; plain values in, plain out."""

    def __init__(
        self,
        labels: list[str],
        features: dict[str, Any],
        model: dict[str, Any],
        optim: dict[str, Any],
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = StackedLSTMClassifier(labels, FeatureConfig(**features), ModelConfig(**model))
        self.optim = OptimConfig(**optim)
        self.seed = seed
        classes = len(labels)
        self.train_acc = MulticlassAccuracy(num_classes=classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=classes, average="micro")

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.model(waves)  # (B, classes)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout and SpecAugment draw from (seed, epoch, batch) alone, so a resumed run draws
        # what an uninterrupted one would (Lightning skips on_train_epoch_start on some restarts);
        # under DDP each process's share of the batch draws its own.
        share = batch_idx * self.trainer.world_size + self.global_rank
        torch.manual_seed(batch_seed(self.seed, self.current_epoch, share))

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        waves, targets = batch  # (B, T), (B,)
        weighted = [(targets, 1.0)]
        if self.optim.mixup > 0:
            waves, partner, lam = mixup(waves, self.optim.mixup)
            weighted = [(targets, lam), (targets[partner], 1.0 - lam)]
        logits = self.model(waves)  # (B, classes)
        loss = self.training_loss(logits, waves, weighted)
        targets = max(weighted, key=lambda pair: pair[1])[0]  # the louder of each pair
        self.train_acc(logits, targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=targets.shape[0])
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_loss(
        self,
        logits: torch.Tensor,
        waves: torch.Tensor,
        weighted: list[tuple[torch.Tensor, float]],
    ) -> torch.Tensor:
        """Cross-entropy of (B, classes) logits against each (targets (B,), weight) pair."""
        smoothing = self.optim.label_smoothing
        return sum(w * F.cross_entropy(logits, t, label_smoothing=smoothing) for t, w in weighted)

    def on_validation_epoch_start(self) -> None:
        share_rank_zero_buffers(self.model)

    def on_test_epoch_start(self) -> None:
        share_rank_zero_buffers(self.model)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def _evaluate(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, metric: MulticlassAccuracy
    ) -> None:
        waves, targets = batch  # (B, T), (B,)
        logits = self.model(waves)  # (B, classes)
        loss = F.cross_entropy(logits, targets)
        metric(logits, targets)
        size = targets.shape[0]
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=size)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True, batch_size=size)
        clips = torch.tensor(float(size), device=targets.device)  # counted over all processes
        self.log(f"{stage}/clips", clips, on_epoch=True, reduce_fx="sum", sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1 and "bias" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim <= 1 or "bias" in n]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.optim.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = min(total - 1, round(total * self.optim.warmup_epochs / epochs))
        if self.optim.schedule == "onecycle":
            scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.optim.lr, total_steps=total, pct_start=max(warmup, 1) / total
            )
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["speechrnn"] = self.model.metadata()


def share_rank_zero_buffers(module: torch.nn.Module) -> None:
    """Under DDP, every process takes rank 0's buffers: the batch-norm statistics it checkpoints.

    DDP sends them out before each training step only, so after it each process holds statistics
    updated on its own share of the batch; evaluating with those would not be the saved model.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for buffer in module.buffers():
            torch.distributed.broadcast(buffer, src=0)


def warmup_cosine(warmup: int, total: int) -> Any:
    """LR multiplier per step: linear warm-up over `warmup` steps, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
