"""Ensemble distillation: teacher checkpoints, their soft labels (cached or online), the loss."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechrnn.audio import PCM_SCALE
from speechrnn.checkpoint import RUN_CHECKPOINT, load_checkpoint, run_checkpoint
from speechrnn.console import counting
from speechrnn.data.files import file_lock, make_dir, sha256_file
from speechrnn.errors import ConfigError
from speechrnn.model import StackedLSTMClassifier


@dataclass(frozen=True)
class DistilConfig:
    """The `distil:` section: which teachers, and how their soft labels weigh in the loss."""

    teachers: tuple[str, ...] | str = ()  # checkpoints, run dirs or sweep dirs; (): no distilling
    weight: float = 0.5  # share of the loss on the teachers' soft labels (the rest: true labels)
    temperature: float = 4.0  # softens teachers and student alike; the soft term is scaled by T^2
    online: bool = True  # teachers label each augmented batch as the student sees it; false: cache
    batch_size: int = 256  # clips per teacher forward pass while the soft labels are cached

    def __post_init__(self) -> None:
        if isinstance(self.teachers, str):  # distil.teachers=runs/teachers: one entry
            object.__setattr__(self, "teachers", (self.teachers,))
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"distil.weight must be in [0, 1], got {self.weight}")
        if self.temperature <= 0:
            raise ConfigError(f"distil.temperature must be positive, got {self.temperature}")
        if self.batch_size < 1:
            raise ConfigError(f"distil.batch_size must be at least 1, got {self.batch_size}")


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


def ensemble_probabilities(
    models: Sequence[StackedLSTMClassifier],
    waves: np.ndarray,
    temperature: float = 1.0,
    batch_size: int = 256,
    what: str = "teachers",
) -> np.ndarray:
    """The members' softmax(logits / T), averaged: (N, C) float32 for int16 clips (N, T)."""
    classes = len(models[0].labels)
    out = np.empty((len(waves), classes), np.float32)  # (N, C)
    device = next(models[0].parameters()).device
    with torch.inference_mode(), counting(what, len(waves), transient=True) as advance:
        for start in range(0, len(waves), batch_size):
            pcm = np.asarray(waves[start : start + batch_size], np.float32)  # (b, T)
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


def cached_soft_labels(
    paths: Sequence[Path],
    models: Sequence[StackedLSTMClassifier],
    waves: np.ndarray,
    identity: str,
    config: DistilConfig,
    cache_dir: Path,
) -> np.ndarray:
    """The averaged soft labels (N, C) of the teachers `models` (loaded from `paths`) for
    `waves`, computed once and kept in `cache_dir` under a key of the teachers' bytes, the clips'
    `identity`, labels and T."""
    labels = models[0].labels
    key = _cache_key(paths, labels, identity, config.temperature)
    make_dir(cache_dir)
    target = cache_dir / f"{key}.npy"
    with file_lock(cache_dir / f".{key}.lock"):  # DDP processes and parallel runs take turns
        cached = _load_cached(target)
        if cached is not None and cached.shape == (len(waves), len(labels)):
            return cached
        soft = ensemble_probabilities(models, waves, config.temperature, config.batch_size)
        partial = target.with_name(f"{key}.partial-{os.getpid()}.npy")
        np.save(partial, soft)
        os.replace(partial, target)
    return soft


def _load_cached(path: Path) -> np.ndarray | None:
    """The cached soft labels; None when missing or damaged (they are then computed again)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def _cache_key(paths: Sequence[Path], labels: Sequence[str], identity: str, t: float) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(sha256_file(path, progress=False).encode())
    digest.update(json.dumps([list(labels), identity, t]).encode())
    return digest.hexdigest()[:24]


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(soft || softmax(logits / T)) * T^2, averaged over the batch (Hinton et al., 2015)."""
    student = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, C)
    return F.kl_div(student, soft, reduction="batchmean") * temperature**2
