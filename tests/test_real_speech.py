"""The default recipe on real GSC speech (../shared/gsc_real_dev): the 12-class target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechrnn.train import train

from conftest import compose_config

REAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "gsc_real_dev"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DEV.is_dir(), reason="real GSC slice not present at ../shared")
def test_default_recipe_reaches_92_percent_on_unseen_real_speakers(tmp_path: Path) -> None:
    overrides = [f"data.root={REAL_DEV}", "trainer=cpu", f"run_dir={tmp_path}"]
    metrics = train(compose_config("train", [*overrides, "trainer.progress_bar=false"]))
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["split"] == "test" and len(report["confusion"]["labels"]) == 12
    assert metrics["test_acc"] >= 0.92, f"12-class test accuracy {metrics['test_acc']:.4f}"
