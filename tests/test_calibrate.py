"""speechrnn-calibrate writes a listener's point into a copy; speechrnn-eval reports it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from speechrnn.data.settings import DataConfig
from speechrnn.errors import ConfigError
from speechrnn.evaluation.calibrate_model import calibrate_checkpoint
from speechrnn.evaluation.evaluate import evaluate
from speechrnn.evaluation.longform import LongformConfig
from speechrnn.evaluation.settings import CalibrateConfig, SpottingConfig
from speechrnn.evaluation.streaming_eval import StreamingSettings
from speechrnn.inference.operating_point import OperatingPoint
from speechrnn.inference.stream_export import export_stream

from support.cli import run_console
from support.inference import tiny_checkpoint

LISTENER = {"causal": True, "bidirectional": False, "conv_channels": 4, "conv_stride": 3}
WORDS = ("yes", "no", "up")


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("listener")
    return tiny_checkpoint(folder / "listener.pt", **LISTENER)


def _streaming(**spotting: object) -> StreamingSettings:
    return StreamingSettings(LongformConfig(duration=40.0), spotting=SpottingConfig(**spotting))


def test_eval_and_calibrate_a_listener(listener: Path, toy_corpus: Path, tmp_path: Path) -> None:
    """speechrnn-eval listens to a causal checkpoint; speechrnn-calibrate writes a copy that
    carries its point, which the evaluation of the copy and of its stream ONNX then report."""
    data = DataConfig(root=str(toy_corpus), words=WORDS)
    before = evaluate(listener, data, report_dir=tmp_path / "r0", progress=False,
                      streaming=_streaming())  # fmt: skip
    metrics = json.loads((before / "metrics.json").read_text())
    assert metrics["clips"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0  # per-clip: forward
    streaming = metrics["streaming"]
    assert streaming["detector"] == {
        "kind": "listener",
        "step_seconds": 0.03,
        "average_steps": 17,  # stream.average 0.5 s over 30 ms steps, as speechrnn-predict
        "suppress": 1.0,
    }
    assert streaming["recording"]["commands"] > 0 and "shipped" not in streaming
    assert "the causal model's listener" in (before / "report.md").read_text()

    out = tmp_path / "calibrated.pt"
    done = run_console(
        "speechrnn-calibrate",
        f"ckpt_path={listener}",
        f"data.root={toy_corpus}",
        'data.words=["yes","no","up"]',
        f"out={out}",
        "longform.duration=40",
        "target_fa_per_hour=90",
        "device=cpu",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "operating point: threshold" in done.stdout and f"wrote {out}" in done.stdout
    stored = torch.load(out, weights_only=True)["detector"]
    point = OperatingPoint.from_metadata(stored, stored_labels(out), str(out))
    assert point.target_fa_per_hour == 90 and point.step_seconds == 0.03

    rep = evaluate(out, data, report_dir=tmp_path / "r1", progress=False, streaming=_streaming())
    shipped = json.loads((rep / "metrics.json").read_text())["streaming"]["shipped"]
    assert shipped["point"] == point.to_metadata()
    assert "Streaming: the shipped operating point" in (rep / "report.md").read_text()

    onnx, _ = export_stream(out, tmp_path / "listener.onnx", detector=stored)
    rep = evaluate(onnx, data, report_dir=tmp_path / "r2", progress=False, streaming=_streaming())
    from_onnx = json.loads((rep / "metrics.json").read_text())
    assert from_onnx["streaming"]["shipped"]["overall"] == shipped["overall"]
    assert from_onnx["clips"] == metrics["clips"]


def stored_labels(path: Path) -> list[str]:
    return list(torch.load(path, weights_only=True)["labels"])


def test_calibrate_refuses_per_clip_models_and_its_own_input(
    listener: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    data = DataConfig(root=str(toy_corpus), words=WORDS)
    plain = tiny_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ConfigError, match=r"per-clip model .* has no listener to calibrate"):
        calibrate_checkpoint(CalibrateConfig(str(plain), str(tmp_path / "o.pt")), data)
    with pytest.raises(ConfigError, match="speechrnn-export it to ONNX"):
        calibrate_checkpoint(CalibrateConfig(str(listener), str(tmp_path / "o.onnx")), data)
    with pytest.raises(ConfigError, match="is the checkpoint itself"):
        calibrate_checkpoint(CalibrateConfig(str(listener), str(listener)), data)
    with pytest.raises(ConfigError, match=r"target_fa_per_hour must be in \[0, 3600\]"):
        CalibrateConfig(str(listener), "o.pt", target_fa_per_hour=-1.0)
    done = run_console(
        "speechrnn-calibrate", f"ckpt_path={plain}", f"data.root={toy_corpus}",
        f"out={tmp_path / 'o.pt'}",
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "has no listener" in lines[0], done.stderr
    assert not (tmp_path / "o.pt").exists()
