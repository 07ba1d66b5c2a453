"""A run stopped by SIGTERM or SIGINT: every process stops at the same batch, saved, resumable."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from speechrnn.errors import ExitCode, Stopped

STOP_SIGNALS = {signal.SIGTERM: ExitCode.TERMINATED, signal.SIGINT: ExitCode.INTERRUPTED}


class GracefulStop(L.Callback):
    """SIGTERM (kill, timeout, a scheduler's preemption) and SIGINT (Ctrl-C) stop training before
    the next batch, every DDP process at the same one: `checkpoint` is saved (atomically,
    with the batches done, so `resume=true` continues exactly there), the loggers flush, and
    Stopped is raised with exit status 143 or 130. A second signal ends the process at once.

    Lightning's own SIGTERM handler sends a collective from inside the handler, which hangs when
    every process gets the signal; this one only records it, and the processes agree before the
    next batch."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def arm(self) -> None:
        """Take over SIGTERM and SIGINT (from the main thread; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous.setdefault(signum, signal.signal(signum, self._handle))

    def disarm(self) -> None:
        """Give SIGTERM and SIGINT back to the handlers they had before `arm`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # asked twice: stop now, as the signal alone would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.received = signum

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.arm()  # after Lightning registered its own SIGTERM handler, so this one wins

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        """Before batch `idx`: its predecessors are done, scheduler step included, so the saved
        state resumes at `idx` exactly."""
        if not self.agreed(trainer):
            return
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "stopped_at"):
            datamodule.stopped_at = idx
        trainer.save_checkpoint(self.checkpoint)
        raise self.stopped(trainer, f"epoch {trainer.current_epoch + 1}, batch {idx + 1}")

    def agreed(self, trainer: L.Trainer) -> bool:
        """Whether any process has received a stop signal (a collective: every process asks)."""
        return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)

    def stopped(self, trainer: L.Trainer, where: str) -> Stopped:
        """The error that ends a stopped run: which signal, where, and how to resume."""
        signum = self.received or signal.SIGTERM  # another process got it: it was SIGTERM
        run_dir = self.checkpoint.parent.parent
        return Stopped(
            f"stopped by {signal.Signals(signum).name} at {where}; saved {self.checkpoint}; to "
            f"continue, run the same command with resume=true run_dir={run_dir}",
            STOP_SIGNALS[signal.Signals(signum)],
        )
