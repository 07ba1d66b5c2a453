"""Ensemble distillation as an add-on: teacher checkpoints label every training batch online."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from speechrnn.audio import PCM_SCALE
from speechrnn.checkpoint import RUN_CHECKPOINT, load_checkpoint, resolve_device, run_checkpoint
from speechrnn.console import counting
from speechrnn.data.splits import SplitData
from speechrnn.errors import ConfigError
from speechrnn.model import StackedLSTMClassifier
from speechrnn.training.module import SpeechCommandsModule

SCORE_BATCH = 256  # clips per teacher forward pass when the ensemble is scored


class DistillationModule(SpeechCommandsModule):
    """The student: the plain module's loss on true labels, blended with the KL divergence to the
    teachers' averaged soft labels of the very batch it sees (augmented and mixed)."""

    def __init__(
        self,
        labels: list[str],
        features: dict[str, Any],
        model: dict[str, Any],
        optim: dict[str, Any],
        seed: int = 0,
        teachers: Sequence[str] = (),
        weight: float = 0.5,
        temperature: float = 4.0,
    ) -> None:
        super().__init__(labels, features, model, optim, seed)
        self.teacher_paths = [str(p) for p in teachers]
        self.weight, self.temperature = weight, temperature
        self._teachers: tuple[StackedLSTMClassifier, ...] = ()  # not submodules: never saved

    @property
    def teachers(self) -> tuple[StackedLSTMClassifier, ...]:
        return self._teachers

    def use_teachers(self, teachers: Sequence[StackedLSTMClassifier]) -> None:
        """The teachers, already loaded (fit moves them to the device)."""
        self._teachers = tuple(teachers)

    def on_fit_start(self) -> None:
        if not self._teachers:  # a module built outside train()
            paths = [Path(p) for p in self.teacher_paths]
            self.use_teachers(load_teachers(paths, self.model.labels, self.device))
        self._teachers = tuple(teacher.to(self.device) for teacher in self._teachers)

    def training_loss(
        self,
        logits: torch.Tensor,
        waves: torch.Tensor,
        weighted: list[tuple[torch.Tensor, float]],
    ) -> torch.Tensor:
        hard = super().training_loss(logits, waves, weighted)
        with torch.no_grad():
            soft = ensemble_posteriors(self._teachers, waves, self.temperature)  # (B, C)
        taught = distillation_loss(logits, soft, self.temperature)
        return (1.0 - self.weight) * hard + self.weight * taught


def teacher_checkpoints(teachers: Sequence[str]) -> list[Path]:
    """Each entry: a checkpoint file, a run dir (its checkpoints/last.ckpt) or a sweep dir (the
    last.ckpt of every run in it); ConfigError naming an entry that holds none."""
    found: list[Path] = []
    for entry in teachers:
        path = Path(entry).expanduser()
        if (checkpoint := run_checkpoint(entry)) is not None:
            found.append(checkpoint)
        elif path.is_dir() and (runs := sorted(path.glob(f"*/{RUN_CHECKPOINT}"))):
            found.extend(runs)
        else:
            raise ConfigError(
                f"distil.teachers: {entry} is no checkpoint, run dir or sweep dir of runs "
                f"(no {RUN_CHECKPOINT} in it)"
            )
    return found


def load_teachers(
    paths: Sequence[Path], labels: Sequence[str], device: torch.device
) -> list[StackedLSTMClassifier]:
    """The teacher models in eval mode, on `device`; they must have the student's labels."""
    models = [load_checkpoint(path, device) for path in paths]
    for path, model in zip(paths, models, strict=True):
        if list(model.labels) != list(labels):
            raise ConfigError(
                f"distil.teachers: {path} has labels {', '.join(model.labels)}; "
                f"the student's are {', '.join(labels)}"
            )
    return models


def teacher_scores(
    paths: Sequence[Path], teachers: Sequence[StackedLSTMClassifier], splits: dict[str, SplitData]
) -> dict[str, Any]:
    """The teachers' ensemble (averaged posteriors) scored like the student on each split:
    {"checkpoints": [...], "<split key>": accuracy}; printed on one line."""
    device = resolve_device("auto")
    models = [model.to(device) for model in teachers]
    scores: dict[str, Any] = {"checkpoints": [str(p) for p in paths]}
    for key, data in splits.items():
        probs = ensemble_probabilities(models, data.waves, what=f"teachers on {key}")  # (N, C)
        scores[key] = float((probs.argmax(axis=1) == data.targets).mean())
    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "checkpoints")
    print(f"teacher: an ensemble of {len(paths)} checkpoints; {shown}")
    return scores


def ensemble_probabilities(
    models: Sequence[StackedLSTMClassifier],
    waves: np.ndarray,
    temperature: float = 1.0,
    what: str = "teachers",
) -> np.ndarray:
    """The members' softmax(logits / T), averaged: (N, C) float32 for int16 clips (N, T)."""
    classes = len(models[0].labels)
    out = np.empty((len(waves), classes), np.float32)  # (N, C)
    device = next(models[0].parameters()).device
    with torch.inference_mode(), counting(what, len(waves), transient=True) as advance:
        for start in range(0, len(waves), SCORE_BATCH):
            pcm = np.asarray(waves[start : start + SCORE_BATCH], np.float32)  # (b, T)
            batch = torch.from_numpy(pcm / PCM_SCALE).to(device)  # (b, T)
            mean = ensemble_posteriors(models, batch, temperature)  # (b, C)
            out[start : start + len(batch)] = mean.float().cpu().numpy()
            advance(len(batch))
    return out


def ensemble_posteriors(
    models: Sequence[StackedLSTMClassifier], waves: torch.Tensor, temperature: float
) -> torch.Tensor:
    """softmax(logits / T) of each member on float waves (B, T), averaged: (B, C)."""
    return sum((m(waves) / temperature).softmax(dim=-1) for m in models) / len(models)


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(soft || softmax(logits / T)) * T^2, averaged over the batch (Hinton et al., 2015)."""
    student = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, C)
    return F.kl_div(student, soft, reduction="batchmean") * temperature**2
