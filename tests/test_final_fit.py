"""data.fit_on=train+validation: validation clips join training, the schedule keeps its steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.augment import AugmentConfig
from speechrnn.data.corpus import open_corpus
from speechrnn.data.datamodule import SpeechCommandsDataModule
from speechrnn.data.fitset import StackedWaves
from speechrnn.data.settings import DataConfig
from speechrnn.errors import ConfigError
from speechrnn.training.settings import TrainSettings
from speechrnn.training.train import train

from support.cli import compose_config, run_console, train_settings
from support.tones import TOY_WORDS

NO_AUGMENT = AugmentConfig(time_shift_ms=0.0, noise_prob=0.0, gain_db=0.0, speed=0.0)


def _module(toy_corpus: Path, cache: Path, fit_on: str) -> SpeechCommandsDataModule:
    data = DataConfig(
        root=str(toy_corpus), cache_dir=str(cache), words=TOY_WORDS, batch_size=16, fit_on=fit_on
    )
    module = SpeechCommandsDataModule(data, NO_AUGMENT, progress=False)
    module.prepare_data()
    module.setup("fit")
    return module


def test_final_fit_trains_on_train_and_validation_clips_with_the_same_steps(
    toy_corpus: Path, tmp_path: Path
) -> None:
    plain = _module(toy_corpus, tmp_path, "train")
    final = _module(toy_corpus, tmp_path, "train+validation")
    corpus = open_corpus(plain.data, progress=False)
    train, val = corpus.split("train"), corpus.split("validation")
    assert final.fit is not None and final.fit.final and not plain.fit.final  # type: ignore[union-attr]
    assert final.fit.paths == train.paths + val.paths
    assert final.fit.train_clips == len(train.paths)
    assert final.num_train_clips == 80 + 8 + 8  # 20 more known clips; the shares grow with them
    assert plain.schedule_epochs(150) == 150
    assert final.schedule_epochs(150) == round(150 * 72 / 96)
    # Every validation clip is drawn in an epoch, with its word's label.
    rows = final.train_plan.train_rows(0, 0)  # type: ignore[union-attr]
    val_rows = {r - len(train.paths) for r in rows.tolist() if r >= len(train.paths)}
    labels = final.labels
    known_val = [i for i, w in enumerate(val.words) if w in labels]
    assert set(known_val) <= val_rows
    batch_targets = torch.cat([final.gather(b, False)[1] for b in final.train_dataloader()])
    assert batch_targets.shape[0] == final.num_train_clips
    # The stacked store reads the rows of each split's cache, in any order and by slices.
    stacked = final.fit.waves
    assert isinstance(stacked, StackedWaves) and stacked.shape == (78 + 26, 16000)
    picks = np.array([len(train.paths) + 3, 0, len(train.paths) - 1, len(train.paths)])
    expected = np.stack([val.waves[3], train.waves[0], train.waves[-1], val.waves[0]])
    np.testing.assert_array_equal(stacked[picks], expected)
    np.testing.assert_array_equal(
        stacked[len(train.paths) - 1 : len(train.paths) + 1][1], val.waves[0]
    )


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("test_checkpoint=best", "test_checkpoint=best cannot choose"),
        ("trainer.early_stopping_patience=3", "early_stopping_patience cannot choose"),
        ("objective=val_error", "a sweep's objective=val_error cannot choose"),
    ],
)
def test_a_final_fit_refuses_to_choose_on_the_clips_it_trains_on(
    tmp_path: Path, override: str, needle: str
) -> None:
    cfg = compose_config(
        "train", ["data.root=x", "data.fit_on=train+validation", f"run_dir={tmp_path}", override]
    )
    with pytest.raises(ConfigError, match=needle):
        TrainSettings.from_config(cfg, multirun=True)
    if override == "objective=val_error":  # one run alone chooses nothing
        TrainSettings.from_config(cfg)


def test_an_unknown_fit_set_is_one_error_line(tmp_path: Path) -> None:
    done = run_console(
        "speechrnn-train", "data.root=x", "data.fit_on=everything", f"run_dir={tmp_path}"
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: data.fit_on must be one of train, train+validation, got 'everything'"
    ]


def test_final_fit_run_trains_and_tests_on_the_untouched_test_split(
    toy_corpus: Path, tmp_path: Path
) -> None:
    overrides = [
        f"data.root={toy_corpus}",
        'data.words=["yes","no","up","down"]',
        "data.batch_size=16",
        "data.fit_on=train+validation",
        "model=lstm_small",
        "model.hidden_size=16",
        "trainer=cpu",
        "trainer.progress_bar=false",
        "trainer.max_epochs=3",
        "evaluate=false",
        f"run_dir={tmp_path}",
    ]
    metrics = train(train_settings(overrides))
    assert metrics["fit_on"] == "train+validation" and metrics["teacher"] is None
    assert metrics["epochs"] == 2  # round(3 * 30 / 40): 3 epochs' steps over the train split
    assert metrics["test_clips"] == 8 + 1 + 1
    assert json.loads((tmp_path / "metrics.json").read_text())["fit_on"] == "train+validation"
