"""Ensemble distillation as an add-on: teachers found, the batch labelled, the student trained."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechrnn import augment
from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import ConfigError
from speechrnn.inference.backends import TorchBackend
from speechrnn.model import StackedLSTMClassifier
from speechrnn.training import distil
from speechrnn.training.distil import (
    DistillationModule,
    distillation_loss,
    load_teachers,
    teacher_checkpoints,
)
from speechrnn.training.settings import TrainSettings
from speechrnn.training.train import train

from support.cli import compose_config, run_console, train_settings

TONE_TASK = 'data.words=["yes","no","up","down"]'


@pytest.fixture(scope="module")
def teachers(tone_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep dir of two teacher runs (the tone model and a copy of it)."""
    sweep = tmp_path_factory.mktemp("teachers")
    for run in ("0", "1"):
        (sweep / run / "checkpoints").mkdir(parents=True)
        shutil.copy(tone_checkpoint, sweep / run / "checkpoints" / "last.ckpt")
    return sweep


def _student(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        f"data.root={corpus}",
        TONE_TASK,
        "data.batch_size=16",
        "model=lstm_small",
        "model.hidden_size=16",
        "trainer=cpu",
        "trainer.progress_bar=false",
        "trainer.max_epochs=2",
        "evaluate=false",
        f"run_dir={run_dir}",
        *extra,
    ]


def test_teachers_are_checkpoints_run_dirs_or_sweep_dirs(teachers: Path, tmp_path: Path) -> None:
    runs = [teachers / r / "checkpoints" / "last.ckpt" for r in ("0", "1")]
    assert teacher_checkpoints([str(teachers)]) == runs
    assert teacher_checkpoints([str(teachers / "1"), str(runs[0])]) == [runs[1], runs[0]]
    with pytest.raises(ConfigError, match=r"distil.teachers: .*empty is no checkpoint, run dir"):
        teacher_checkpoints([str(tmp_path / "empty")])


def test_the_ensemble_averages_the_teachers_posteriors(
    teachers: Path, tone_checkpoint: Path
) -> None:
    waves = np.random.default_rng(0).integers(-8000, 8000, (5, 16000)).astype(np.int16)
    paths = teacher_checkpoints([str(teachers)])
    models = load_teachers(paths, TorchBackend(tone_checkpoint).labels, torch.device("cpu"))
    soft = distil.ensemble_probabilities(models, waves)  # (5, C)
    expected = TorchBackend(tone_checkpoint)(waves.astype(np.float32) / 32768.0)  # (5, C)
    np.testing.assert_allclose(soft, expected, atol=1e-5)
    softer = distil.ensemble_probabilities(models, waves, temperature=4.0)
    assert softer.max(axis=1).mean() < soft.max(axis=1).mean()  # T softens the posteriors


def test_distillation_loss_is_the_tempered_kl_divergence() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = 2.0
    own = (logits / t).softmax(dim=-1)
    assert distillation_loss(logits, own, t).abs() < 1e-6  # nothing to learn from itself
    soft = torch.tensor([[0.2, 0.7, 0.1], [1.0, 0.0, 0.0]])
    kl = (soft * (soft.clamp(min=1e-12).log() - (logits / t).log_softmax(-1))).sum(-1).mean()
    torch.testing.assert_close(distillation_loss(logits, soft, t), kl * t**2)
    assert F.cross_entropy(logits, soft.argmax(-1)) > 0  # the true-label term is separate


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_online_teachers_label_the_batch_the_student_sees(
    tone_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, mixup: float
) -> None:
    teacher = load_checkpoint(tone_checkpoint)
    module = DistillationModule(
        labels=teacher.labels,
        features=teacher.metadata()["features"],
        model={**teacher.metadata()["model"], "hidden_size": 8},
        optim={"mixup": mixup},
        teachers=[str(tone_checkpoint), str(tone_checkpoint)],
        weight=0.5,
        temperature=3.0,
    )
    module.on_fit_start()
    taught: list[torch.Tensor] = []

    def recorded(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
        taught.append(soft)
        return distillation_loss(logits, soft, temperature)

    mixed: list[torch.Tensor] = []
    labelled: list[torch.Tensor] = []

    def mixing(waves: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        blended, partner, lam = augment.mixup(waves, alpha)
        mixed.append(blended)
        return blended, partner, lam

    ensemble = distil.ensemble_posteriors

    def labelling(
        teachers: Sequence[StackedLSTMClassifier], waves: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        labelled.append(waves)
        return ensemble(teachers, waves, temperature)

    monkeypatch.setattr("speechrnn.training.distil.distillation_loss", recorded)
    monkeypatch.setattr("speechrnn.training.module.mixup", mixing)
    monkeypatch.setattr("speechrnn.training.distil.ensemble_posteriors", labelling)
    waves = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, (4, 16000)).astype("f4"))
    module.training_step((waves, torch.tensor([0, 1, 2, 3])), 0)
    assert len(mixed) == (1 if mixup else 0)
    student_input = mixed[0] if mixed else waves  # (4, 16000): the mixed clips under mixup
    assert not mixup or not torch.equal(student_input, waves)
    assert len(labelled) == 1 and torch.equal(labelled[0], student_input)
    with torch.no_grad():
        expected = (teacher(student_input) / 3.0).softmax(dim=-1)  # (4, C): both teachers one model
    torch.testing.assert_close(taught[0], expected)
    assert all(key.startswith("model.") for key in module.state_dict())  # teachers are not saved


def test_student_learns_from_the_teachers_and_reports_their_ensemble(
    teachers: Path, toy_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[Path] = []

    def counted(path: Path, device: torch.device) -> StackedLSTMClassifier:
        loaded.append(path)
        return load_checkpoint(path, device)

    monkeypatch.setattr(distil, "load_checkpoint", counted)
    cache = tmp_path / "cache"
    overrides = _student(
        toy_corpus,
        tmp_path / "run",
        f"distil.teachers={teachers}",
        f"data.cache_dir={cache}",
    )
    metrics = train(train_settings(overrides))
    teacher = metrics["teacher"]
    assert len(teacher["checkpoints"]) == 2 and 0.0 <= teacher["val_acc"] <= 1.0
    assert 0.0 <= teacher["test_acc"] <= 1.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["teacher"] == teacher
    student = load_checkpoint(metrics["tested_checkpoint"])  # an ordinary checkpoint
    assert student.labels == TorchBackend(teachers / "0" / "checkpoints" / "last.ckpt").labels
    hparams = torch.load(metrics["tested_checkpoint"], weights_only=True)["hyper_parameters"]
    paths = teacher_checkpoints([str(teachers)])
    assert hparams["teachers"] == [str(p) for p in paths]
    assert (hparams["weight"], hparams["temperature"]) == (0.5, 4.0)
    assert loaded == paths  # one load each: label check, ensemble score and fit share it
    assert not (cache / "teachers").exists()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("distil.weight=1.5", "distil.weight must be in [0, 1], got 1.5"),
        ("distil.temperature=0", "distil.temperature must be positive, got 0"),
        ("+distil.online=false", "distil: unknown key(s) online"),
    ],
)
def test_bad_distillation_settings_are_refused_before_training(
    tmp_path: Path, override: str, needle: str
) -> None:
    cfg = compose_config("train", ["data.root=x", f"run_dir={tmp_path}", override])
    with pytest.raises(ConfigError, match=re.escape(needle)):
        TrainSettings.from_config(cfg)


def test_missing_teachers_are_one_error_line(toy_corpus: Path, tmp_path: Path) -> None:
    done = run_console(
        "speechrnn-train", *_student(toy_corpus, tmp_path, "distil.teachers=nowhere")
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: distil.teachers: nowhere is no checkpoint, run dir or sweep dir of runs "
        f"(no {Path('checkpoints') / 'last.ckpt'} in it)"
    ]


def test_teachers_of_another_task_are_refused(
    teachers: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    overrides = _student(toy_corpus, tmp_path, f"distil.teachers={teachers}")
    overrides[1] = 'data.words=["yes","no","up"]'
    with pytest.raises(ConfigError, match=r"has labels .*; the student's are"):
        train(train_settings(overrides))
