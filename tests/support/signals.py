"""A callback that signals its own process at a chosen batch: a stop at a known place."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L


class SignalAt(L.Callback):
    """Sends `signum` to this process before batch `batch` of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int, batch: int, signum: int = signal.SIGTERM) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if (trainer.current_epoch, 0) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, out: Any, batch: Any, idx: int
    ) -> None:
        if (trainer.current_epoch, idx + 1) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)
