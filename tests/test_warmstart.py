"""init_from: a run starts from another checkpoint's weights; the head's rows follow the labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import ConfigError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, StackedLSTMClassifier
from speechrnn.training.settings import TrainSettings
from speechrnn.training.train import train
from speechrnn.training.warmstart import warm_start, warm_start_checkpoint

from support.cli import compose_config, run_console, tone_task_overrides, train_settings
from support.inference import LABELS, PLAIN, tiny_checkpoint

SMALL = {**PLAIN, "hidden_size": 32}


def _model(labels: list[str], features: FeatureConfig | None = None, **model: object) -> Any:
    torch.manual_seed(1)
    config = ModelConfig(**{**SMALL, **model})  # type: ignore[arg-type]
    return StackedLSTMClassifier(labels, features or FeatureConfig(), config)


def test_the_body_is_copied_and_head_rows_follow_the_labels(tmp_path: Path) -> None:
    source = load_checkpoint(tiny_checkpoint(tmp_path / "source.pt"))  # LABELS
    target = _model(["_silence_", "yes", "down", "no"])
    fresh = target.head.weight.detach().clone()  # (4, D)
    line = warm_start(target, tmp_path / "source.pt")
    assert "3 of 4 labels' head rows; new: down" in line
    for name, tensor in target.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(tensor, source.state_dict()[name], rtol=0, atol=0)
    for mine, theirs in ((0, 3), (1, 0), (3, 1)):
        torch.testing.assert_close(target.head.weight[mine], source.head.weight[theirs])
        torch.testing.assert_close(target.head.bias[mine], source.head.bias[theirs])
    torch.testing.assert_close(target.head.weight[2], fresh[2])  # down: as initialised


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        (lambda: _model(LABELS, FeatureConfig(n_mfcc=20)), r"other features \(n_mfcc differ\)"),
        (lambda: _model(LABELS, hidden_size=48), r"another architecture \(lstm.weight_ih_l0"),
        (lambda: _model(["left", "right"]), "none of this run's labels"),
    ],
)
def test_weights_that_cannot_fit_are_refused_by_name(
    tmp_path: Path, target: Any, needle: str
) -> None:
    tiny_checkpoint(tmp_path / "source.pt")
    with pytest.raises(ConfigError, match=needle):
        warm_start(target(), tmp_path / "source.pt")


def test_init_from_is_a_checkpoint_or_a_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = tiny_checkpoint(run / "checkpoints" / "last.ckpt")
    assert warm_start_checkpoint(str(run)) == last
    assert warm_start_checkpoint(str(last)) == last
    with pytest.raises(ConfigError, match=r"init_from: .*nowhere.* does not exist"):
        warm_start_checkpoint(str(tmp_path / "nowhere"))
    cfg = compose_config("train", ["data.root=x", f"init_from={run}", "resume=true"])
    with pytest.raises(ConfigError, match="ckpt_path and resume continue a run"):
        TrainSettings.from_config(cfg)


def _fine_tune(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    return tone_task_overrides(corpus, run_dir, "trainer.max_epochs=1", *extra)


def test_a_run_starts_from_the_weights_it_is_given(
    tone_checkpoint: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    """At a learning rate too small to move them, the run ends where its source began."""
    run = tmp_path / "run"
    metrics = train(
        train_settings(_fine_tune(toy_corpus, run, f"init_from={tone_checkpoint}", "optim.lr=1e-9"))
    )
    assert metrics["init_from"] == str(tone_checkpoint)
    tuned, source = load_checkpoint(metrics["tested_checkpoint"]), load_checkpoint(tone_checkpoint)
    assert tuned.labels == source.labels
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[name], tensor, rtol=0, atol=1e-5)


def test_a_wrong_init_from_is_one_line_on_the_console(toy_corpus: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.ckpt"
    result = run_console(
        "speechrnn-train", *_fine_tune(toy_corpus, tmp_path / "run", f"init_from={missing}")
    )
    assert result.returncode != 0
    assert f"init_from: {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
