"""train(settings): build data, model and Trainer -> fit -> test -> write the run dir."""

from __future__ import annotations

import logging
import subprocess
import time
import warnings
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch

from speechrnn.checkpoint import check_resumable
from speechrnn.data.datamodule import EVAL_SEED, SpeechCommandsDataModule
from speechrnn.errors import Stopped
from speechrnn.training.detection import DetectionModule, mix_batch, training_data
from speechrnn.training.distil import (
    DistillationModule,
    load_teachers,
    teacher_checkpoints,
    teacher_scores,
)
from speechrnn.training.module import SpeechCommandsModule
from speechrnn.training.persist import write_json
from speechrnn.training.settings import TrainSettings
from speechrnn.training.stopping import GracefulStop
from speechrnn.training.trainer import Throughput, best_checkpoint, make_trainer
from speechrnn.training.warmstart import warm_start


def train(settings: TrainSettings) -> dict[str, Any]:
    """Train, test the chosen checkpoint (unless test=false), write metrics.json (and the report)
    into the run dir; global rank 0 alone writes and returns the metrics, other ranks return {}.
    A DDP process leaves its process group on the way out, failed runs included."""
    try:
        return _train(settings)
    finally:
        _end_process_group()


def _train(settings: TrainSettings) -> dict[str, Any]:
    if settings.ckpt_path is not None:  # one line for a corrupt or foreign file, before any work
        check_resumable(settings.ckpt_path, asdict(settings.features), asdict(settings.model))
    _quiet_lightning()
    run, run_dir = settings.run, settings.run_dir
    L.seed_everything(run.seed, workers=True, verbose=False)
    datamodule = _datamodule(settings)
    datamodule.prepare_data()
    datamodule.setup("fit")
    chosen_epochs = settings.trainer.max_epochs
    epochs = datamodule.schedule_epochs(chosen_epochs)
    settings = replace(settings, trainer=replace(settings.trainer, max_epochs=epochs))
    module = _module(settings, list(datamodule.labels))
    started_from = warm_start(module.model, settings.init_from) if settings.init_from else None
    throughput = Throughput()
    stop = GracefulStop(run_dir / "checkpoints" / "last.ckpt")
    trainer = make_trainer(settings, throughput, stop, _resumed_step(settings.ckpt_path))
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
        if isinstance(module, DistillationModule):
            teacher = _teacher_scores(module, datamodule, run.test)
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=settings.ckpt_path, weights_only=True)
        if stop.agreed(trainer):  # a signal in the last validation: its last.ckpt is saved
            raise stop.stopped(trainer, f"the end of epoch {trainer.current_epoch}")
    except Stopped:
        _wait_for_followers(trainer)
        raise
    finally:
        stop.disarm()
    wall = time.perf_counter() - started
    val_clips = trainer.callback_metrics.get("val/clips")  # before test() replaces them
    best = best_checkpoint(trainer)
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file() and settings.ckpt_path is not None:  # a finished run, resumed elsewhere
        last = settings.ckpt_path
    chosen = last if run.test_checkpoint == "last" and best is not None else best
    tested: list[dict[str, float]] = []
    if run.test:
        checkpoint = chosen and str(chosen)
        tested = trainer.test(
            module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False, weights_only=True
        )
    if not trainer.is_global_zero:
        return {}
    metrics = _run_metrics(trainer, module, best, tested, wall, throughput)
    metrics["val_clips"] = int(val_clips) if val_clips is not None else None  # all processes
    metrics["tested_checkpoint"] = str(chosen) if chosen and run.test else None
    metrics["fit_on"] = settings.data.fit_on
    metrics["init_from"] = str(settings.init_from) if settings.init_from else None
    metrics["teacher"] = teacher
    if run.test and run.evaluate and chosen is not None:
        metrics["report_dir"] = str(_write_report(chosen, settings))
    write_json(run_dir / "metrics.json", metrics)
    tail = f"  test/acc {metrics['test_acc']}" if run.test else ""
    print(f"run dir: {run_dir}  best val/acc {metrics['best_val_acc']}{tail}")
    return metrics


def _resumed_step(checkpoint: Path | None) -> int | None:
    """The optimiser step a resumed run continues from (its log keeps the rows up to it)."""
    if checkpoint is None:
        return None
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])


def _datamodule(settings: TrainSettings) -> SpeechCommandsDataModule:
    """The data module; the detection stage's mixes its training batches at its own shares."""
    data, augment, seed = settings.data, settings.augment, settings.run.seed
    detection = settings.detection
    if not detection.enabled:
        return SpeechCommandsDataModule(data, augment, seed=seed)
    mixer = partial(mix_batch, config=detection)
    train_data = training_data(data, detection)
    return SpeechCommandsDataModule(data, augment, seed, train_data=train_data, mixer=mixer)


def _module(settings: TrainSettings, labels: list[str]) -> SpeechCommandsModule:
    """The plain module, the detection add-on (detection.enabled), or with distil.teachers set
    the distillation add-on, its teachers loaded once on the CPU by every process before fit
    (wrong labels: one line)."""
    values = {
        "labels": labels,
        "features": asdict(settings.features),
        "model": asdict(settings.model),
        "optim": asdict(settings.optim),
        "seed": settings.run.seed,
    }
    detection, distil = settings.detection, settings.distil
    if detection.enabled:
        return DetectionModule(
            **values,
            lead_ms=detection.lead_ms,
            tail_ms=detection.tail_ms,
            filler_weight=detection.filler_weight,
        )
    if not distil.teachers:
        return SpeechCommandsModule(**values)
    paths = teacher_checkpoints(distil.teachers)
    teachers = [str(p) for p in paths]
    module = DistillationModule(
        **values, teachers=teachers, weight=distil.weight, temperature=distil.temperature
    )
    module.use_teachers(load_teachers(paths, labels, torch.device("cpu")))
    return module


def _teacher_scores(
    module: DistillationModule, datamodule: SpeechCommandsDataModule, test: bool
) -> dict[str, Any]:
    splits = {"val_acc": datamodule.eval_set("validation")}
    if test:
        splits["test_acc"] = datamodule.eval_set("test")
    paths = [Path(p) for p in module.teacher_paths]
    return teacher_scores(paths, module.teachers, splits)


def _wait_for_followers(trainer: L.Trainer, timeout: float = 120.0) -> None:
    """The processes this one started (Lightning's DDP on one machine) end before it does."""
    for process in getattr(trainer.strategy.launcher, "procs", []):
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def _end_process_group() -> None:
    """Leave the DDP process group, if this process joined one: Lightning leaves a gloo group to
    interpreter shutdown, where its worker threads can abort the process (SIGABRT)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


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


def _write_report(ckpt: Path, settings: TrainSettings) -> Path:
    from speechrnn.evaluation.evaluate import evaluate

    report_dir = settings.run_dir / "report"
    return evaluate(ckpt, settings.data, split="test", report_dir=report_dir, seed=EVAL_SEED)
