"""train(settings) and speechrnn-train: config groups, learning, reproducibility, resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from speechrnn.augment import mixup
from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import ConfigError
from speechrnn.training.module import SpeechCommandsModule, share_rank_zero_buffers
from speechrnn.training.settings import TrainerConfig, TrainSettings, cpu_has_bf16
from speechrnn.training.train import train

from support.cli import (
    TRAINED_RUN,
    run_console,
    small_task_overrides,
    train_settings,
)

GROUPS = {
    "data": ["gsc_v2_12", "gsc_v2_35", "gsc_v1_12", "synthetic"],
    "model": ["lstm", "lstm_small", "lstm_attention"],
    "trainer": ["auto", "cpu", "cpu_ddp", "gpu", "ddp"],
}


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_config_group_composes_and_validates(
    compose_train: Callable[[list[str]], DictConfig], group: str, option: str, tmp_path: Path
) -> None:
    cfg = compose_train([f"{group}={option}", f"run_dir={tmp_path}"])
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU; use trainer=cpu"):
            TrainSettings.from_config(cfg)
        cfg.trainer.accelerator = "cpu"  # the rest of the group still has to validate
    settings = TrainSettings.from_config(cfg)
    assert settings.run_dir == tmp_path
    if group == "trainer" and option.endswith("ddp"):
        assert settings.trainer.strategy == "ddp"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.hidden_size=-3", "model.hidden_size must be at least 1"),
        ("model.pooling=max", "model.pooling must be one of"),
        ("optim.lr=0", "optim.lr must be positive"),
        ("optim.ema_decay=1.0", "optim.ema_decay must be in"),
        ("optim.mixup=-1", "optim.mixup cannot be negative"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("features.n_mfcc=100", "features.n_mfcc"),
        ("resume=true", "resume=true but"),
        ("test_checkpoint=final", "test_checkpoint must be one of best, last"),
    ],
)
def test_bad_values_are_refused_before_training(
    compose_train: Callable[[list[str]], DictConfig], tmp_path: Path, override: str, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        TrainSettings.from_config(compose_train([override, f"run_dir={tmp_path}"]))


@pytest.mark.parametrize(
    ("precision", "expected"), [("auto", "32-true"), ("bf16-mixed", "bf16-mixed")]
)
def test_cpu_precision_is_float32_unless_asked(precision: str, expected: str) -> None:
    assert TrainerConfig(accelerator="cpu", precision=precision).resolved_precision() == expected


def test_bf16_mixed_trains_on_the_cpu_and_saves_float32_weights(
    compose_train: Callable[[list[str]], DictConfig], small_corpus: Path, tmp_path: Path
) -> None:
    extra = ("trainer.max_epochs=1", "trainer.precision=bf16-mixed", "evaluate=false")
    if not cpu_has_bf16():  # oneDNN's bf16 LSTM would fail inside the first step: one line first
        with pytest.raises(ConfigError, match="needs native bfloat16"):
            train(train_settings(small_task_overrides(small_corpus, tmp_path, *extra)))
        return
    metrics = train(train_settings(small_task_overrides(small_corpus, tmp_path, *extra)))
    assert metrics["precision"] == "bf16-mixed" and metrics["test_acc"] is not None
    model = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("model", GROUPS["model"])
def test_fast_dev_run_for_each_model(
    compose_train: Callable[[list[str]], DictConfig], small_corpus: Path, tmp_path: Path, model: str
) -> None:
    overrides = small_task_overrides(small_corpus, tmp_path, "trainer.fast_dev_run=true")
    metrics = train(train_settings([*overrides, f"model={model}", "evaluate=false"]))
    assert metrics["test_acc"] is not None and metrics["parameters"] > 0
    assert metrics["precision"] == "32-true"


def test_learns_on_unseen_speakers(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["labels"][:2] == ["_silence_", "_unknown_"] and len(metrics["labels"]) == 8
    # Measured over seeds: 0.77 to 0.93 on unseen validation and test speakers; chance is 1/8.
    assert metrics["best_val_acc"] >= 0.7
    assert metrics["test_acc"] >= 0.7
    assert metrics["train_clips_per_second"] > 0
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert (trained_run / "csv" / "metrics.csv").is_file()


def test_checkpoint_reloads_without_lightning_with_same_predictions(
    trained_checkpoint: Path,
) -> None:
    from speechrnn.training.module import SpeechCommandsModule

    torch.manual_seed(0)
    clips = torch.randn(3, 16000) * 0.1
    module = SpeechCommandsModule.load_from_checkpoint(
        trained_checkpoint, map_location="cpu"
    ).eval()
    with torch.no_grad():
        expected = module(clips).softmax(-1)
    script = (
        "import sys, json, torch\n"
        "from speechrnn.checkpoint import load_checkpoint\n"
        f"m = load_checkpoint({str(trained_checkpoint)!r})\n"
        "torch.manual_seed(0); x = torch.randn(3, 16000) * 0.1\n"
        "p = m(x).softmax(-1).tolist()\n"
        "assert 'lightning' not in sys.modules and 'hydra' not in sys.modules\n"
        "print(json.dumps(p))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    torch.testing.assert_close(torch.tensor(json.loads(out.stdout)), expected, atol=1e-5, rtol=1e-4)
    assert load_checkpoint(trained_checkpoint).labels == module.model.labels


def test_same_seed_same_metrics(
    compose_train: Callable[[list[str]], DictConfig], small_corpus: Path, tmp_path: Path
) -> None:
    runs = []
    for name in ("a", "b"):
        overrides = small_task_overrides(small_corpus, tmp_path / name, "trainer.max_epochs=2")
        runs.append(train(train_settings([*overrides, "evaluate=false", "seed=7"])))
    for key in ("best_val_acc", "test_acc", "epochs"):
        assert runs[0][key] == runs[1][key]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_mixup_loss_weighs_both_labels_of_each_mixed_clip() -> None:
    labels = ["yes", "no", "up"]
    plain = {"dropout": 0.0, "freq_masks": 0, "time_masks": 0, "hidden_size": 16}
    module = SpeechCommandsModule(labels, {}, plain, {"mixup": 0.4})
    waves, targets = 0.1 * torch.randn(6, 16000), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(5)
    loss = module.training_step((waves, targets), 0)
    torch.manual_seed(5)
    mixed, partner, lam = mixup(waves, 0.4)
    logits = module.model(mixed)
    expected = lam * F.cross_entropy(logits, targets)
    expected += (1 - lam) * F.cross_entropy(logits, targets[partner])
    torch.testing.assert_close(loss, expected)


def test_ema_checkpoint_holds_the_averaged_weights(
    compose_train: Callable[[list[str]], DictConfig], small_corpus: Path, tmp_path: Path
) -> None:
    overrides = small_task_overrides(small_corpus, tmp_path, "trainer.max_epochs=2")
    metrics = train(train_settings([*overrides, "evaluate=false", "optim.ema_decay=0.9"]))
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    averaged, current = last["state_dict"], last["current_model_state"]
    assert averaged.keys() == current.keys()
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged)
    model = load_checkpoint(metrics["best_checkpoint"])
    best = torch.load(metrics["best_checkpoint"], weights_only=True)["state_dict"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best[f"model.{name}"])


def test_last_checkpoint_is_the_final_epoch_when_the_best_came_earlier(
    compose_train: Callable[[list[str]], DictConfig], small_corpus: Path, tmp_path: Path
) -> None:
    frozen = ("trainer.max_epochs=3", "evaluate=false", "optim.lr=1e-12")
    metrics = train(train_settings(small_task_overrides(small_corpus, tmp_path, *frozen)))
    assert Path(metrics["best_checkpoint"]).name == "best-epoch000.ckpt"
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]
    assert metrics["tested_checkpoint"] == str(tmp_path / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("choice", ["best", "last"])
def test_test_checkpoint_picks_the_weights_tested_and_reported(
    compose_train: Callable[[list[str]], DictConfig],
    small_corpus: Path,
    tmp_path: Path,
    choice: str,
) -> None:
    overrides = small_task_overrides(small_corpus, tmp_path, "trainer.max_epochs=2")
    metrics = train(train_settings([*overrides, f"test_checkpoint={choice}"]))
    chosen = (
        metrics["best_checkpoint"]
        if choice == "best"
        else str(tmp_path / "checkpoints" / "last.ckpt")
    )
    assert metrics["tested_checkpoint"] == chosen
    report = json.loads((Path(metrics["report_dir"]) / "metrics.json").read_text())
    assert report["checkpoint"] == str(Path(chosen).resolve())
    assert report["accuracy"] == pytest.approx(metrics["test_acc"], abs=1e-6)


def test_a_finished_run_resumed_into_a_new_run_dir_tests_its_final_weights(
    compose_train: Callable[[list[str]], DictConfig],
    small_corpus: Path,
    trained_run: Path,
    tmp_path: Path,
) -> None:
    finished = json.loads((trained_run / "metrics.json").read_text())
    final = trained_run / "checkpoints" / "last.ckpt"
    overrides = small_task_overrides(small_corpus, tmp_path, *TRAINED_RUN, f"ckpt_path={final}")
    metrics = train(train_settings(overrides))
    assert metrics["tested_checkpoint"] == str(final)
    assert metrics["test_acc"] == pytest.approx(finished["test_acc"], abs=1e-6)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_run_dir_holds_the_hydra_config_and_nothing_lands_in_runs(
    small_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    overrides = small_task_overrides(small_corpus, run, "trainer.fast_dev_run=true")
    result = run_console("speechrnn-train", *overrides, "evaluate=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fast_dev_run: true" in (run / ".hydra" / "config.yaml").read_text()
    assert (run / "metrics.json").is_file() and not (tmp_path / "runs").exists()


def test_console_script_multirun_writes_metrics(small_corpus: Path, tmp_path: Path) -> None:
    overrides = [
        o for o in small_task_overrides(small_corpus, tmp_path) if not o.startswith("run_dir")
    ]
    result = run_console(
        "speechrnn-train",
        "-m",
        *overrides,
        "model.hidden_size=16,24",
        "trainer.max_epochs=1",
        "evaluate=false",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert result.returncode == 0, result.stderr
    for job in ("0", "1"):
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert metrics["epochs"] == 1
        assert (tmp_path / "sweep" / job / ".hydra" / "config.yaml").is_file()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.hidden_sise=3", "hidden_sise"),
        ("model.hidden_size=big", "model.hidden_size"),
        ("model.hidden_size=-1", "model.hidden_size must be at least 1"),
        ("model=nope", "nope"),
        ("trainer.max_epochs=[", "trainer.max_epochs"),
    ],
)
def test_wrong_override_gives_one_line(tmp_path: Path, override: str, needle: str) -> None:
    result = run_console(
        "speechrnn-train", override, f"run_dir={tmp_path}", "data=synthetic", timeout=120
    )
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2  # ExitCode.USAGE: bad arguments
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_ddp_in_a_sweep_is_one_line_error(small_corpus: Path, tmp_path: Path) -> None:
    overrides = [
        o for o in small_task_overrides(small_corpus, tmp_path) if not o.startswith("run_dir")
    ]
    result = run_console(
        "speechrnn-train",
        "-m",
        *overrides,
        "trainer=cpu_ddp",
        "seed=0,1",
        f"hydra.sweep.dir={tmp_path}",
    )
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: trainer.strategy=ddp cannot run in a -m sweep")
    assert not list(tmp_path.rglob("*.ckpt"))


def _share_from(rank: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    norm = torch.nn.BatchNorm1d(3)
    norm.running_mean.fill_(rank + 1.0)  # as if each process had seen its own share of a batch
    share_rank_zero_buffers(norm)
    torch.save(norm.state_dict(), f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def test_ddp_processes_evaluate_with_rank_zero_batch_norm_statistics(tmp_path: Path) -> None:
    out = tmp_path / "norm"
    torch.multiprocessing.spawn(_share_from, args=(str(tmp_path / "init"), str(out)), nprocs=2)
    states = [torch.load(f"{out}.{rank}") for rank in (0, 1)]
    assert states[0]["running_mean"].tolist() == [1.0, 1.0, 1.0]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("fails", [False, True])
def test_train_leaves_the_process_group_it_joined(
    fails: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gloo group left to interpreter shutdown can abort the process: train() ends the group
    that its Trainer joined, even when training fails, for speechrnn-train and scripts alike."""

    def joins(cfg: DictConfig) -> dict[str, float]:
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1
        )
        if fails:
            raise ConfigError("a rank failed")
        return {"best_val_acc": 0.5}

    monkeypatch.setattr("speechrnn.training.train._train", joins)
    cfg = DictConfig({})
    if fails:
        with pytest.raises(ConfigError, match="a rank failed"):
            train(cfg)
    else:
        assert train(cfg) == {"best_val_acc": 0.5}
    assert not torch.distributed.is_initialized()
