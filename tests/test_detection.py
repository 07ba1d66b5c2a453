"""The listener's detection stage in speechrnn-train: recipe, refusals, batches, a tiny run."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from speechrnn.augment import NoiseBank
from speechrnn.data.datamodule import SpeechCommandsDataModule
from speechrnn.errors import ConfigError
from speechrnn.training.detection import mix_batch, training_data
from speechrnn.training.mixtures import DetectionConfig
from speechrnn.training.settings import TrainSettings
from speechrnn.training.train import train

from support.cli import compose_config, run_console, small_task_overrides, train_settings

NAMES = ["_silence_", "_unknown_", "yes", "no"]
TINY_LISTENER = (
    "model=listener",
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.conv_channels=4",
)


def test_the_recipe_is_the_measured_stage_two(tmp_path: Path) -> None:
    settings = train_settings(["+recipe=detection", "data.root=x", f"run_dir={tmp_path}"])
    assert settings.detection == DetectionConfig(enabled=True)
    assert settings.model.causal and settings.optim.lr == 3e-4
    assert (settings.trainer.max_epochs, settings.data.batch_size) == (10, 32)
    assert settings.data.unknown_share == 0.1  # validation and test keep the task's shares
    defaults = DetectionConfig()
    assert (defaults.clips, defaults.snr_db, defaults.noise_db) == (4, (5.0, 30.0), (-55.0, -30.0))
    assert (defaults.cut_share, defaults.filler_weight, defaults.lead_ms) == (0.2, 2.0, 150.0)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["detection.enabled=true"], "trains a listener: set model=listener"),
        (["+recipe=detection", "distil.teachers=runs/t"], "cannot distil: leave distil.teachers"),
        (["+recipe=detection", "optim.mixup=0.2"], "set optim.mixup=0"),
        (["detection.clips=0"], "detection.clips must be at least 1, got 0"),
        (["detection.snr_db=[30,5]"], "detection.snr_db must be [low, high]"),
        (["detection.tail_ms=-1"], "detection.tail_ms cannot be negative"),
        (["detection.unknown_share=2"], "detection.unknown_share must be in [0, 1]"),
    ],
)
def test_what_the_detection_stage_cannot_train_is_refused(
    tmp_path: Path, overrides: list[str], needle: str
) -> None:
    cfg = compose_config("train", ["data.root=x", f"run_dir={tmp_path}", *overrides])
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        TrainSettings.from_config(cfg)


def test_a_refusal_is_one_line_on_the_console(tmp_path: Path) -> None:
    done = run_console("speechrnn-train", "detection.enabled=true", f"run_dir={tmp_path}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: detection.enabled=true trains a listener: set model=listener (model.causal=true)"
    ]


def test_a_batch_becomes_sequences_of_every_clip_in_a_random_order() -> None:
    clips = torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 16000) / 100  # (7, T)
    targets = torch.tensor([0, 0, 2, 3, 2, 3, 1])  # _silence_ first, as the data module serves
    config = DetectionConfig(clips=4, speed=0.0, cut_share=0.0, quiet_share=0.0)
    out = mix_batch(
        clips, targets, NAMES, NoiseBank.generated(seconds=3.0), torch.Generator(), config
    )
    assert out.wave.shape == (2, 64000) and out.labels.shape == (2, 4)
    order = out.labels.flatten().tolist()
    assert sorted(order[:7]) == sorted(targets.tolist())  # every clip once, one again to fill
    assert order[:2] != [0, 0]


def test_the_two_stages_train_the_listener_and_validate_per_clip(
    small_corpus: Path, tmp_path: Path
) -> None:
    first = tmp_path / "listener"
    tiny = (*TINY_LISTENER, "trainer.max_epochs=1", "evaluate=false")
    train(train_settings(small_task_overrides(small_corpus, first, *tiny, "test=false")))
    stage_two = ("+recipe=detection", f"init_from={first}", "optim.lr=1e-3")
    metrics = train(
        train_settings(small_task_overrides(small_corpus, tmp_path / "run", *tiny, *stage_two))
    )
    assert metrics["init_from"] == str(first / "checkpoints" / "last.ckpt")
    assert metrics["best_val_acc"] is not None and metrics["test_acc"] is not None
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val_clips"] > 0
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as handle:
        logged = {k for row in csv.DictReader(handle) for k, v in row.items() if v}
    assert {"train/keyword_loss", "train/filler_loss", "val/acc", "test/acc"} <= logged
    hparams = torch.load(metrics["tested_checkpoint"], weights_only=True)["hyper_parameters"]
    assert (hparams["lead_ms"], hparams["filler_weight"]) == (150.0, 2.0)


def test_the_stage_trains_at_its_own_shares_and_validates_at_the_tasks(
    small_corpus: Path, tmp_path: Path
) -> None:
    settings = train_settings(small_task_overrides(small_corpus, tmp_path, *TINY_LISTENER))
    data = settings.data
    plain = SpeechCommandsDataModule(data, settings.augment, progress=False)
    shares = training_data(data, DetectionConfig())
    detection = SpeechCommandsDataModule(data, settings.augment, progress=False, train_data=shares)
    for module in (plain, detection):
        module.setup("fit")
    assert detection.train_plan.n_unknown > 5 * plain.train_plan.n_unknown
    assert detection.num_val_clips == plain.num_val_clips
    no_silence = training_data(replace(data, silence_share=0.0), DetectionConfig())
    assert no_silence.silence_share == 0.0 and no_silence.unknown_share == 0.64
