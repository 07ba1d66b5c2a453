"""train(cfg): build data, model and Lightning Trainer from a composed config; write the run dir."""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import callbacks as cb
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from speechrnn.checkpoint import check_resumable, resolve_device
from speechrnn.data.datamodule import EVAL_SEED, SpeechCommandsDataModule
from speechrnn.data.settings import cache_root
from speechrnn.model import StackedLSTMClassifier
from speechrnn.training.distil import (
    cached_soft_labels,
    ensemble_probabilities,
    load_teachers,
    teacher_checkpoints,
)
from speechrnn.training.job import TrainSettings
from speechrnn.training.module import SpeechCommandsModule
from speechrnn.training.warmstart import warm_start


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
        self.clips += int(batch[1].shape[0]) * trainer.world_size

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds else 0.0


def train(cfg: Any) -> dict[str, Any]:
    """Train, test the chosen checkpoint (unless test=false), write metrics.json (and the report)
    into the run dir; global rank 0 alone writes and returns the metrics, other ranks return {}.
    A DDP process leaves its process group on the way out, failed runs included."""
    try:
        return _train(cfg)
    finally:
        _end_process_group()


def _train(cfg: Any) -> dict[str, Any]:
    settings = TrainSettings.from_config(cfg)
    if settings.ckpt_path is not None:  # one line for a corrupt or foreign file, before any work
        check_resumable(settings.ckpt_path, asdict(settings.features), asdict(settings.model))
    _quiet_lightning()
    run_dir = settings.run_dir
    L.seed_everything(settings.seed, workers=True, verbose=False)
    datamodule = SpeechCommandsDataModule(settings.data, settings.augment, seed=settings.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    paths, teachers = _attach_teachers(settings, datamodule)
    chosen_epochs = settings.trainer.max_epochs
    epochs = datamodule.schedule_epochs(chosen_epochs)
    settings = replace(settings, trainer=replace(settings.trainer, max_epochs=epochs))
    module = SpeechCommandsModule(
        labels=list(datamodule.labels),
        features=asdict(settings.features),
        model=asdict(settings.model),
        optim=asdict(settings.optim),
        seed=settings.seed,
        distil_weight=settings.distil.weight if teachers else 0.0,
        distil_temperature=settings.distil.temperature,
        online_teachers=[str(p) for p in paths] if settings.distil.online else None,
    )
    if settings.distil.online:
        module.use_teachers(teachers)
    started_from = warm_start(module.model, settings.init_from) if settings.init_from else None
    throughput = Throughput()
    trainer = _make_trainer(settings, throughput)
    teacher: dict[str, Any] | None = None
    if trainer.is_global_zero:
        parameters, labels = module.model.num_parameters(), len(datamodule.labels)
        print(f"model: {parameters:,} parameters, {labels} labels")
        if started_from:
            print(started_from)
        if settings.data.fit_on != "train":
            print(
                f"final fit on {settings.data.fit_on}: {datamodule.num_train_clips:,} clips an "
                f"epoch; {epochs} epochs take the steps of {chosen_epochs} over the train split"
            )
        if teachers:
            teacher = _teacher_scores(paths, teachers, datamodule, settings.test)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=settings.ckpt_path, weights_only=True)
    wall = time.perf_counter() - started
    val_clips = trainer.callback_metrics.get("val/clips")  # before test() replaces them
    best = _best_checkpoint(trainer)
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file() and settings.ckpt_path is not None:  # a finished run, resumed elsewhere
        last = settings.ckpt_path
    chosen = last if settings.test_checkpoint == "last" and best is not None else best
    tested: list[dict[str, float]] = []
    if settings.test:
        checkpoint = chosen and str(chosen)
        tested = trainer.test(
            module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False, weights_only=True
        )
    if not trainer.is_global_zero:
        return {}
    metrics = _run_metrics(trainer, module, best, tested, wall, throughput)
    metrics["val_clips"] = int(val_clips) if val_clips is not None else None  # all processes
    metrics["tested_checkpoint"] = str(chosen) if chosen and settings.test else None
    metrics["fit_on"] = settings.data.fit_on
    metrics["init_from"] = str(settings.init_from) if settings.init_from else None
    metrics["teacher"] = teacher
    if settings.test and settings.evaluate and chosen is not None:
        metrics["report_dir"] = str(_write_report(chosen, settings, run_dir))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    val, test = metrics["best_val_acc"], metrics["test_acc"]
    tail = f"  test/acc {test}" if settings.test else ""
    print(f"run dir: {run_dir}  best val/acc {val}{tail}")
    return metrics


def _end_process_group() -> None:
    """Leave the DDP process group, if this process joined one: Lightning leaves a gloo group to
    interpreter shutdown, where its worker threads can abort the process (SIGABRT)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _attach_teachers(
    settings: TrainSettings, datamodule: SpeechCommandsDataModule
) -> tuple[list[Path], list[StackedLSTMClassifier]]:
    """With distil.teachers set: their checkpoints and models, loaded once on the CPU by every
    process before fit (wrong labels: one line); with distil.online=false their cached soft
    labels ride along with every training clip."""
    if not settings.distil.teachers:
        return [], []
    paths = teacher_checkpoints(settings.distil.teachers)
    teachers = load_teachers(paths, datamodule.labels, torch.device("cpu"))
    if settings.distil.online:
        return paths, teachers
    fit = datamodule.fit
    corpus = datamodule.corpus
    assert fit is not None and corpus is not None  # setup() has run
    identity = f"{fit.fit_on}:{corpus.index.fingerprint(fit.paths)}"
    soft = cached_soft_labels(
        paths,
        teachers,
        fit.waves,
        identity,
        settings.distil,
        cache_root(settings.data) / "teachers",
    )
    datamodule.attach_soft_labels(soft)
    return paths, teachers


def _teacher_scores(
    paths: list[Path],
    teachers: list[StackedLSTMClassifier],
    datamodule: SpeechCommandsDataModule,
    test: bool,
) -> dict[str, Any]:
    """The teachers' ensemble (averaged posteriors) scored like the student: its own accuracy."""
    device = resolve_device("auto")
    models = [model.to(device) for model in teachers]
    scores: dict[str, Any] = {"checkpoints": [str(p) for p in paths]}
    for split, key in (("validation", "val_acc"), ("test", "test_acc")):
        if split == "test" and not test:
            continue
        data = datamodule.eval_set(split)
        probs = ensemble_probabilities(models, data.waves, what=f"teachers on {split}")
        scores[key] = float((probs.argmax(axis=1) == data.targets).mean())
    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "checkpoints")
    print(f"teacher: an ensemble of {len(paths)} checkpoints; {shown}")
    return scores


def _quiet_lightning() -> None:
    """Drop Lightning's advertising and the warnings that say nothing about the user's run."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")
    warnings.filterwarnings("ignore", message=r"Precision .* not supported by the model summary")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_tips)
    logging.getLogger("lightning.pytorch").propagate = False  # its own handler prints it once


def _no_tips(record: logging.LogRecord) -> bool:
    """One filter object, so repeated train() calls do not stack copies on the logger."""
    return not record.getMessage().startswith("💡 Tip")


def _make_trainer(settings: TrainSettings, throughput: Throughput) -> L.Trainer:
    tcfg, run_dir = settings.trainer, settings.run_dir
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
    ]
    if tcfg.early_stopping_patience:
        callbacks.append(
            cb.EarlyStopping("val/acc", mode="max", patience=tcfg.early_stopping_patience)
        )
    if settings.optim.ema_decay:
        callbacks.append(cb.EMAWeightAveraging(decay=settings.optim.ema_decay))
    if tcfg.progress_bar:
        callbacks.append(cb.RichProgressBar())
    cpu = tcfg.accelerator == "cpu" or not torch.cuda.is_available()
    return L.Trainer(
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        strategy=tcfg.strategy,
        num_nodes=tcfg.num_nodes,
        precision=tcfg.resolved_precision(),  # type: ignore[arg-type]
        max_epochs=tcfg.max_epochs,
        fast_dev_run=tcfg.fast_dev_run,
        limit_train_batches=tcfg.limit_train_batches,
        log_every_n_steps=tcfg.log_every_n_steps,
        gradient_clip_val=settings.optim.grad_clip or None,
        deterministic=cpu,
        use_distributed_sampler=False,  # the loaders split each batch across DDP processes
        callbacks=callbacks,
        enable_progress_bar=tcfg.progress_bar,
        logger=[
            TensorBoardLogger(run_dir, name="tensorboard", version=""),
            CSVLogger(
                run_dir, name="csv", version="", flush_logs_every_n_steps=tcfg.log_every_n_steps
            ),
        ],
        default_root_dir=run_dir,
    )


def _best_checkpoint(trainer: L.Trainer) -> Path | None:
    """The best checkpoint on val/acc; None when none was saved (fast_dev_run)."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
    return Path(best) if best else None


def _run_metrics(
    trainer: L.Trainer,
    module: SpeechCommandsModule,
    best: Path | None,
    tested: list[dict[str, float]],
    wall: float,
    throughput: Throughput,
) -> dict[str, Any]:
    checkpoint = trainer.checkpoint_callback
    score = getattr(checkpoint, "best_model_score", None)
    return {
        "best_val_acc": float(score) if score is not None else None,
        "test_acc": float(tested[0]["test/acc"]) if tested else None,
        "test_clips": int(tested[0]["test/clips"]) if tested else None,
        "epochs": int(trainer.current_epoch),
        "wall_seconds": round(wall, 2),
        "train_clips_per_second": round(throughput.clips_per_second, 1),
        "parameters": module.model.num_parameters(),
        "precision": str(trainer.precision),
        "labels": module.model.labels,
        "best_checkpoint": str(best) if best else None,
    }


def _write_report(ckpt: Path, settings: TrainSettings, run_dir: Path) -> Path:
    from speechrnn.evaluation.evaluate import evaluate

    return evaluate(
        ckpt, settings.data, split="test", report_dir=run_dir / "report", seed=EVAL_SEED
    )
