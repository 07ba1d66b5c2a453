"""The default recipe on real GSC speech (../shared/gsc_real_dev): the 12-class target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import run_console
from support.real import REAL_DEV


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DEV.is_dir(), reason="no real GSC slice")
def test_default_recipe_reaches_92_percent_on_unseen_real_speakers(tmp_path: Path) -> None:
    # The README's CPU command: two one-thread DDP processes (DDP runs the command again).
    extra = ["trainer=cpu_ddp", "trainer.progress_bar=false", f"run_dir={tmp_path}"]
    result = run_console("speechrnn-train", f"data.root={REAL_DEV}", *extra, timeout=3600)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["split"] == "test" and len(report["confusion"]["labels"]) == 12
    assert metrics["test_acc"] == pytest.approx(report["accuracy"], abs=1e-6)
    assert metrics["test_acc"] >= 0.92, f"12-class test accuracy {metrics['test_acc']:.4f}"
