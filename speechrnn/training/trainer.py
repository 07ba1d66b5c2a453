"""The run's Lightning Trainer: checkpoints, loggers and callbacks by `_target_`, progress."""

from __future__ import annotations

import importlib
import inspect
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import callbacks as cb

from speechrnn.errors import ConfigError
from speechrnn.training.persist import AtomicCheckpointIO
from speechrnn.training.settings import TrainSettings
from speechrnn.training.stopping import GracefulStop

EXTRAS = {"wandb": "wandb", "mlflow": "mlflow"}  # a logger's package: its pip extra


class Throughput(L.Callback):
    """Counts training clips and the seconds spent in training batches (validation excluded)."""

    def __init__(self) -> None:
        self.clips = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, out: Any, batch: Any, idx: int
    ) -> None:
        self.seconds += time.perf_counter() - self._start
        self.clips += int(batch[1].numel()) * trainer.world_size  # (B,) or (B, clips) labels

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds else 0.0


class EpochLines(L.Callback):
    """One line per epoch on stdout, where a progress bar cannot draw (a file or a pipe)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        shown = ("train/loss", "train/acc", "val/loss", "val/acc")
        metrics = trainer.callback_metrics
        values = "  ".join(f"{k} {float(metrics[k]):.4f}" for k in shown if k in metrics)
        seconds = time.perf_counter() - self._start
        epoch = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        print(f"{epoch}  {values}  {seconds:.1f} s", flush=True)


def make_trainer(
    settings: TrainSettings, throughput: Throughput, stop: GracefulStop, resume_step: int | None
) -> L.Trainer:
    """The Trainer of `settings`: checkpoints into the run dir (atomically), its loggers (those
    that keep a file keep its rows up to `resume_step`) and callbacks, stopped by `stop`."""
    tcfg, run_dir = settings.trainer, settings.run_dir
    check_trainer_args(settings.trainer_args)
    callbacks: list[L.Callback] = [
        cb.ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best-epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor="val/acc",
            mode="max",
            save_top_k=1,
        ),
        cb.ModelCheckpoint(  # every epoch: Lightning 2.6's save_last only copies new bests
            dirpath=run_dir / "checkpoints",
            filename="last",
            save_top_k=1,
            enable_version_counter=False,
        ),
        cb.LearningRateMonitor(logging_interval="step"),
        throughput,
        stop,
    ]
    if tcfg.early_stopping_patience:
        callbacks.append(
            cb.EarlyStopping("val/acc", mode="max", patience=tcfg.early_stopping_patience)
        )
    if settings.optim.ema_decay:
        callbacks.append(cb.EMAWeightAveraging(decay=settings.optim.ema_decay))
    bar = tcfg.progress_bar and sys.stdout.isatty()
    if bar:
        callbacks.append(cb.RichProgressBar())
    elif tcfg.progress_bar:
        callbacks.append(EpochLines())
    callbacks += [build(spec, f"callbacks.{name}") for name, spec in settings.callbacks.items()]
    loggers = [
        build(spec, f"logger.{name}", save_dir=run_dir, resume_step=resume_step)
        for name, spec in settings.loggers.items()
    ]
    cpu = tcfg.accelerator == "cpu" or not torch.cuda.is_available()
    arguments: dict[str, Any] = {
        "accelerator": tcfg.accelerator,
        "devices": tcfg.devices,
        "strategy": tcfg.strategy,
        "num_nodes": tcfg.num_nodes,
        "precision": tcfg.resolved_precision(),
        "max_epochs": tcfg.max_epochs,
        "fast_dev_run": tcfg.fast_dev_run,
        "limit_train_batches": tcfg.limit_train_batches,
        "log_every_n_steps": tcfg.log_every_n_steps,
        "deterministic": cpu,
    }
    return L.Trainer(
        **{**arguments, **settings.trainer_args},
        gradient_clip_val=settings.optim.grad_clip or None,
        use_distributed_sampler=False,  # the loaders split each batch across DDP processes
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bar,
        logger=loggers or False,
        default_root_dir=run_dir,
    )


def check_trainer_args(args: dict[str, Any]) -> None:
    """Further Trainer arguments must be ones Lightning's Trainer takes; ConfigError if not."""
    known = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(
            f"trainer: Lightning's Trainer takes no argument {', '.join(unknown)} "
            "(see its documentation for the names)"
        )


def build(spec: dict[str, Any], key: str, **defaults: Any) -> Any:
    """The object a `{_target_: dotted.path, **arguments}` spec names; `defaults` fill the
    arguments the spec leaves out and the class takes (save_dir for loggers)."""
    target = spec["_target_"]
    module_name, _, name = target.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except ImportError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        hint = f": pip install 'speechrnn[{extra}]'" if extra else ""
        raise ConfigError(f"{key}: cannot import {target} ({exc}){hint}") from None
    except (AttributeError, ValueError):
        raise ConfigError(f"{key}: {target} does not exist") from None
    arguments = {k: v for k, v in spec.items() if k != "_target_"}
    accepted = inspect.signature(factory).parameters
    arguments |= {k: v for k, v in defaults.items() if k in accepted and k not in arguments}
    try:
        return factory(**arguments)
    except TypeError as exc:
        raise ConfigError(f"{key}: {target}: {exc}") from None


def best_checkpoint(trainer: L.Trainer) -> Path | None:
    """The best checkpoint on val/acc; None when none was saved (fast_dev_run)."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
    return Path(best) if best else None
