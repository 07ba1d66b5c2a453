"""Sweeps through Hydra's plugins: submitit's local launcher, the Optuna sweeper (a resumable
study that never sees the test split), and sweep_table.py over their results."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import sweep_table
import yaml

from speechrnn.errors import ConfigError
from speechrnn.training.settings import TrainSettings

from support.cli import compose_config, console_script, run_console, small_task_overrides

SWEEP_TIMEOUT = 300


def sweep_overrides(corpus: Path, *extra: str) -> list[str]:
    """The tiny task without run_dir (each job gets its own dir under hydra.sweep.dir)."""
    return [
        o
        for o in small_task_overrides(corpus, Path("unused"), "trainer.max_epochs=1", *extra)
        if not o.startswith("run_dir=")
    ]


def metrics_of(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def run_sweep(sweep_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """speechrnn-train -m with `args` into `sweep_dir`, to completion; asserts it succeeded."""
    result = run_console(
        "speechrnn-train", "-m", *args, f"hydra.sweep.dir={sweep_dir}", timeout=SWEEP_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_submitit_local_runs_each_job_in_its_own_process(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    run_sweep(
        sweep,
        *sweep_overrides(small_corpus, "evaluate=false"),
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
    )
    for job in ("0", "1"):
        assert metrics_of(sweep / job)["epochs"] == 1
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
    # submitit's own record of the two jobs: a folder per job (its process id), a result each
    results = sorted((sweep / ".submitit").glob("*/*_result.pkl"))
    assert len(results) == 2 and results[0].parent != results[1].parent
    assert sweep_table.main([str(sweep)]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| `")]
    assert len(rows) == 1 and rows[0].startswith("| `(base)` | 2 |")


def _completed(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return []
    return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_optuna_study_minimises_validation_error_and_continues_after_a_kill(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, study = f"sqlite:///{tmp_path / 'study.db'}", "tiny"
    args = [
        *sweep_overrides(small_corpus),
        "+sweep=optuna",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
    ]
    first, second = tmp_path / "first", tmp_path / "second"
    killed = subprocess.Popen(
        [
            console_script("speechrnn-train"),
            "-m",
            *args,
            "hydra.sweeper.n_trials=3",
            f"hydra.sweep.dir={first}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + SWEEP_TIMEOUT
    while not _completed(storage, study) and killed.poll() is None:
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)
    killed.kill()
    _, err = killed.communicate(timeout=60)
    assert len(_completed(storage, study)) == 1, err[-3000:]

    run_sweep(second, *args, "hydra.sweeper.n_trials=1")
    trials = _completed(storage, study)
    assert len(trials) == 2  # the killed study's trial is kept and the study went on
    runs = [first / "0", second / "0"]
    for trial, job in zip(sorted(trials, key=lambda t: t.number), runs, strict=True):
        metrics = metrics_of(job)
        assert trial.value == pytest.approx(1.0 - metrics["best_val_acc"])
        assert metrics["test_acc"] is None and metrics["test_clips"] is None
        assert not (job / "report").exists()
        assert "test/" not in (job / "csv" / "metrics.csv").read_text()
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert any(o.startswith("optim.lr=") for o in overrides)
        assert {"optim.lr", "model.hidden_size", "augment.speed"} <= set(trial.params)
    best = yaml.safe_load((second / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(t.value for t in trials))  # the best accuracy
    assert sweep_table.main([str(first), str(second)]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| `")]
    assert len(rows) == 2 and all(row.split("|")[4].strip() == "-" for row in rows)


def test_submitit_slurm_launcher_takes_gpus_time_and_partition(small_corpus: Path) -> None:
    """The settings docs/cluster.md names reach the SLURM launcher (no cluster here to use)."""
    from hydra import compose, initialize_config_dir

    from speechrnn import CONFIG_DIR

    overrides = [
        *sweep_overrides(small_corpus),
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.timeout_min=90",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.cpus_per_task=8",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.timeout_min, launcher.partition) == (1, 90, "gpu")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["objective=wall_seconds"], "objective must be one of"),
        (["objective=test_error", "test=false"], "objective=test_error needs test=true"),
        (["test=maybe"], "test: expected true or false"),
    ],
)
def test_objective_and_test_settings_are_checked_before_training(
    small_corpus: Path, extra: list[str], needle: str
) -> None:
    cfg = compose_config("train", small_task_overrides(small_corpus, Path("unused"), *extra))
    with pytest.raises(ConfigError, match=needle):
        TrainSettings.from_config(cfg)


def test_any_sweeper_as_hydra_documents_it_minimises_the_validation_error(
    small_corpus: Path, tmp_path: Path
) -> None:
    """`-m hydra/sweeper=optuna 'optim.lr=interval(...)'`, nothing else: the task's one float is
    the validation error, which the sweeper's default direction (minimise) gets right."""
    sweep = tmp_path / "optuna"
    run_sweep(
        sweep,
        *sweep_overrides(small_corpus, "evaluate=false"),
        "hydra/sweeper=optuna",
        "optim.lr=interval(0.001,0.01)",
        "hydra.sweeper.n_trials=2",
    )
    errors = [1.0 - metrics_of(sweep / job)["best_val_acc"] for job in ("0", "1")]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(errors))  # the best accuracy, not the worst
