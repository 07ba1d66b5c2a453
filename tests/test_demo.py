"""scripts/demo.sh --quick end to end: report, predictions for every file, ONNX agrees."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh"), "--quick", "--cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def test_demo_trains_and_reports(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    report = out / "run" / "report"
    for name in ("metrics.json", "report.html", "report.md", "confusion.png", "errors.csv"):
        assert (report / name).is_file(), name
    metrics = json.loads((report / "metrics.json").read_text())
    labels = metrics["confusion"]["labels"]
    assert len(labels) == 36 and "_silence_" in labels  # the 35 words and _silence_
    # --quick (60 speakers, 30 epochs): 0.90 and 0.91 on unseen speakers (seeds 0, 1); chance 1/36.
    assert metrics["accuracy"] >= 0.8
    assert "test accuracy" in stdout and "report.html" in stdout


def _labels(text: str) -> list[tuple[str, ...]]:
    """(file, label) per answer and (label,) per detection line of speechrnn-predict's output."""
    return [
        (ln.split()[4],) if ln.startswith(" ") else tuple(ln.split()[:2])
        for ln in text.splitlines()
    ]


def test_demo_predicts_every_file_and_onnx_agrees(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    files = [*sorted(str(f) for f in (out / "clips").glob("*.wav")), str(out / "long.wav")]
    answers = {tag: _labels((out / f"predict_{tag}.txt").read_text()) for tag in ("ckpt", "onnx")}
    assert sorted(a[0] for a in answers["ckpt"] if len(a) == 2) == sorted(files)
    assert answers["onnx"] == answers["ckpt"]
    assert any(len(a) == 1 for a in answers["ckpt"]), "the long file gave no detections"
    assert "checkpoint and ONNX predictions agree" in stdout


def test_demo_rerun_reuses_what_is_built(demo: tuple[Path, str]) -> None:
    out, _ = demo
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh"), "--quick", "--cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already installed" in result.stdout and "already trained" in result.stdout
    assert "already exported" in result.stdout
