"""A bug in a console script: one `internal error` line and exit 70; SPEECHRNN_DEBUG=1 shows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from speechrnn.cli import predict
from speechrnn.console import DEBUG_ENV
from speechrnn.errors import ExitCode

from support.inference import cli_env, tiny_checkpoint

# A console script run as installed, with one of its steps replaced by one that fails.
_BROKEN = """
import sys
import {module} as target
def broken(*args, **kwargs):
    raise KeyError("planted")
target.{function} = broken
from {entry_module} import {entry}
sys.argv[0] = "speechrnn"
sys.exit({entry}())
"""
HINT = f"(a bug; run again with {DEBUG_ENV}=1 for the full traceback)"


def _run_broken(
    module: str, function: str, entry: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    entry_module, entry_name = entry.split(":")
    code = _BROKEN.format(
        module=module, function=function, entry_module=entry_module, entry=entry_name
    )
    env = cli_env() | {DEBUG_ENV: "0"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


def test_predict_bug_is_one_line_exit_70(tmp_path: Path) -> None:
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    done = _run_broken(
        "speechrnn.cli.predict",
        "expand_inputs",
        "speechrnn.cli.predict:main",
        str(model),
        "x.wav",
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.INTERNAL
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"error: internal error: KeyError: 'planted' {HINT}"]


def test_predict_bug_raises_with_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_checkpoint(tmp_path / "tiny.pt")

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("planted")

    monkeypatch.setattr(predict, "expand_inputs", broken)
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(KeyError, match="planted"):  # uncaught: Python prints the traceback
        predict.main([str(model), "x.wav"])
    monkeypatch.setenv(DEBUG_ENV, "0")
    with pytest.raises(SystemExit) as stopped:
        predict.main([str(model), "x.wav"])
    assert stopped.value.code == ExitCode.INTERNAL
    assert capsys.readouterr().err == f"error: internal error: KeyError: 'planted' {HINT}\n"


def test_hydra_job_bug_is_one_line_exit_70(tmp_path: Path) -> None:
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    done = _run_broken(
        "speechrnn.inference.export",
        "export_onnx",
        "speechrnn.cli.export:main",
        f"ckpt_path={model}",
        f"hydra.run.dir={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.INTERNAL
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"error: internal error: KeyError: 'planted' {HINT}"]
