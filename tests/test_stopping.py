"""A stopped run loses nothing: SIGTERM, SIGINT and SIGKILL, DDP, a full or read-only disk."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from speechrnn.data.files import write_atomically
from speechrnn.errors import DataError, ExitCode, Stopped
from speechrnn.training import persist
from speechrnn.training.train import train

from support.cli import console_script, run_console, small_task_overrides, train_settings

EPOCHS = ("trainer.max_epochs=4", "evaluate=false", "seed=3")
DDP = ("trainer=cpu_ddp", "trainer.max_epochs=6", "evaluate=false")


@pytest.fixture(scope="module")
def straight(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The metrics of the run the stopped ones resume, trained without a stop."""
    run_dir = tmp_path_factory.mktemp("straight")
    return train(train_settings(small_task_overrides(small_corpus, run_dir, *EPOCHS)))


def _start(overrides: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [console_script("speechrnn-train"), *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **env},
    )


def _stop_after_first_epoch(proc: subprocess.Popen[str], run_dir: Path, sig: int) -> str:
    """Send `sig` to every process of the run once its first epoch is saved; its stderr."""
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=240)
    return err


def _logged_epochs(run_dir: Path) -> list[int]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return [int(float(row["epoch"])) for row in csv.DictReader(handle) if row.get("val/acc")]


@pytest.mark.parametrize(
    ("sig", "code"),
    [
        (signal.SIGTERM, ExitCode.TERMINATED),
        (signal.SIGINT, ExitCode.INTERRUPTED),
        (signal.SIGKILL, None),
    ],
    ids=["SIGTERM", "SIGINT", "SIGKILL"],
)
def test_a_stopped_run_resumes_to_the_uninterrupted_metrics_with_every_epoch_logged(
    small_corpus: Path, tmp_path: Path, straight: dict, sig: int, code: ExitCode | None
) -> None:
    overrides = small_task_overrides(small_corpus, tmp_path, *EPOCHS)
    err = _stop_after_first_epoch(_start(overrides), tmp_path, sig)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (tmp_path / "metrics.json").exists()
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))
    if code is not None:  # SIGKILL cannot be answered; the others are, in one line
        lines = err.strip().splitlines()
        assert len(lines) == 1, err[-3000:]
        name = signal.Signals(sig).name
        assert lines[0].startswith(f"error: stopped by {name} at epoch ")
        assert f"resume=true run_dir={tmp_path}" in lines[0]
        assert torch.load(last, weights_only=True)["speechrnn"]["labels"]

    resumed = run_console("speechrnn-train", *overrides, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == straight["epochs"] == 4
    assert metrics["best_val_acc"] == pytest.approx(straight["best_val_acc"], abs=1e-6)
    assert metrics["test_acc"] == pytest.approx(straight["test_acc"], abs=1e-6)
    assert _logged_epochs(tmp_path) == [0, 1, 2, 3]  # nothing lost, nothing twice


@pytest.mark.parametrize(("epoch", "batch"), [(1, 3), (2, 0)])
def test_a_stop_inside_an_epoch_resumes_at_that_batch(
    small_corpus: Path, tmp_path: Path, straight: dict, epoch: int, batch: int
) -> None:
    """The signal comes at a known batch (a callback by _target_ sends it): the resumed run
    trains the batches that were left, no other, and ends where the uninterrupted one does."""
    overrides = small_task_overrides(small_corpus, tmp_path, *EPOCHS)
    target = f"{{_target_: support.signals.SignalAt, epoch: {epoch}, batch: {batch}}}"
    with pytest.raises(
        Stopped, match=f"stopped by SIGTERM at epoch {epoch + 1}, batch {batch + 1};"
    ):
        train(train_settings([*overrides, f"+callbacks.stop={target}"]))
    metrics = train(train_settings([*overrides, "resume=true"]))
    assert metrics["best_val_acc"] == pytest.approx(straight["best_val_acc"], abs=1e-6)
    assert metrics["test_acc"] == pytest.approx(straight["test_acc"], abs=1e-6)
    assert _logged_epochs(tmp_path) == [0, 1, 2, 3]


def test_sigterm_to_every_process_of_a_ddp_run_stops_them_all_saved(
    small_corpus: Path, tmp_path: Path
) -> None:
    overrides = small_task_overrides(small_corpus, tmp_path, *DDP)
    proc = _start(overrides, OMP_NUM_THREADS="1")
    err = _stop_after_first_epoch(proc, tmp_path, signal.SIGTERM)
    assert proc.returncode == ExitCode.TERMINATED, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # and DDP's INFO
    assert len(errors) == 1 and errors[0].startswith("error: stopped by SIGTERM at "), err[-3000:]
    assert "Traceback" not in err
    time.sleep(1)
    with pytest.raises(ProcessLookupError):  # no process of the run is left
        os.killpg(proc.pid, 0)
    resumed = run_console(
        "speechrnn-train", *overrides, "resume=true", env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 6
    assert _logged_epochs(tmp_path) == list(range(6))


def test_a_full_disk_is_one_error_and_leaves_no_part_of_a_file(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"the previous checkpoint")

    def fills_the_disk(handle: object) -> None:
        handle.write(b"x" * 1000)  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DataError, match=r"last.ckpt: cannot write \(No space left on device\)"):
        write_atomically(target, fills_the_disk)
    assert target.read_bytes() == b"the previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_training_run_on_a_full_disk_stops_with_one_line(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(checkpoint: object, handle: object) -> None:
        handle.write(b"PK partial")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(persist.torch, "save", full)
    run_dir = tmp_path / "run"
    settings = train_settings(small_task_overrides(small_corpus, run_dir, "trainer.max_epochs=1"))
    with pytest.raises(DataError, match=r"\.ckpt: cannot write \(No space left on device\)"):
        train(settings)
    assert not [p for p in (run_dir / "checkpoints").iterdir()]  # nothing truncated left behind


def test_a_run_dir_that_cannot_be_written_is_one_line_exit_1(small_corpus: Path) -> None:
    done = run_console(
        "speechrnn-train", *small_task_overrides(small_corpus, Path("/sys/speechrnn-run"))
    )
    assert done.returncode == ExitCode.FAILED, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "/sys/speechrnn-run" in lines[0]
    assert "internal error" not in lines[0]
