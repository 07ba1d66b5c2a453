"""A listener's operating point: fitted per keyword to a false-alarm budget, kept as plain data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import CheckpointError
from speechrnn.evaluation.calibration import calibrate
from speechrnn.evaluation.longform import Event
from speechrnn.features import FeatureConfig
from speechrnn.inference.operating_point import OperatingPoint, detections, step_windows
from speechrnn.inference.streaming import window_starts
from speechrnn.model import ModelConfig, StackedLSTMClassifier

from support.inference import step_scene

LABELS = ["_silence_", "_unknown_", "yes", "no"]
STEP = 480
SECONDS = 60
GRID = (0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999, 0.9995)


def _scene() -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """60 s: three yes and three no, each peaking at 0.96 / 0.999 just after the word; a
    false "yes" at 0.85 and a false "no" at 0.99 over other sounds."""
    peaks = [("yes", 5, 0.96), ("no", 10, 0.999), ("yes", 20, 0.96), ("no", 25, 0.999)]
    peaks += [("yes", 35, 0.96), ("no", 40, 0.999), ("yes", 50, 0.85), ("no", 55, 0.99)]
    wave, posteriors = step_scene(SECONDS, LABELS, peaks, STEP)
    events = [Event(label, s + 0.35, s + 0.65) for label, s, _ in peaks if s < 50]
    return wave, posteriors, events


def test_thresholds_fit_each_keyword_to_the_budget() -> None:
    wave, posteriors, events = _scene()
    point, summary = calibrate(
        wave, posteriors, LABELS, events, 0.03, averages=(1, 3), grid=GRID, shared=False
    )
    assert summary == {"average_steps": 1, "hits": 6, "misses": 0, "false_alarms": 0}
    assert point.thresholds == {"yes": 0.95, "no": 0.999}  # the highest with every hit
    found = detections(wave, posteriors, LABELS, point)
    assert sorted(d.label for d in found) == ["no"] * 3 + ["yes"] * 3
    safer, summary = calibrate(
        wave, posteriors, LABELS, events, 0.03, averages=(1,), grid=GRID, shared=False, margin=1
    )
    assert safer.thresholds == {"yes": 0.97, "no": 0.9995}  # one grid notch of margin
    assert summary["hits"] == 0 and summary["false_alarms"] == 0


def test_one_shared_threshold_would_miss_or_fire() -> None:
    wave, posteriors, _ = _scene()
    for shared, expected in ((0.9, 7), (0.995, 3)):
        point = OperatingPoint({"yes": shared, "no": shared})
        assert len(detections(wave, posteriors, LABELS, point)) == expected


def test_scores_reach_the_pivot_at_each_keywords_threshold() -> None:
    point = OperatingPoint({"yes": 0.9, "no": 0.99}, average_steps=2)
    rows = np.array([[0.1, 0.0, 0.9, 0.0], [0.1, 0.0, 0.9, 0.0], [0.0, 0.0, 0.01, 0.99]])
    scores = point.scores(rows, LABELS)  # (3, C)
    assert scores[1, 2] == pytest.approx(0.5) and scores[1, [0, 1, 3]].sum() == 0
    assert scores[2, 3] < 0.5  # averaged with the row before: 0.495 < 0.99


def test_steps_sit_on_the_detector_grid() -> None:
    samples = 5 * 16000
    steps = np.random.default_rng(0).dirichlet(np.ones(4), samples // STEP).astype(np.float32)
    rows = step_windows(steps, samples, STEP, LABELS)
    starts = window_starts(samples, STEP)
    assert rows.shape[0] == starts.shape[0]
    np.testing.assert_array_equal(rows[1 : 1 + steps.shape[0]], steps)
    assert (rows[0] == [1, 0, 0, 0]).all() and (rows[1 + steps.shape[0] :, 0] == 1).all()
    ends = (starts[1 : 1 + steps.shape[0]] + 16000) - (np.arange(steps.shape[0]) + 1) * STEP
    assert ((ends > 0) & (ends <= STEP)).all()  # each row's window ends just after its step


def test_the_operating_point_travels_as_plain_metadata() -> None:
    point = OperatingPoint({"yes": 0.97, "no": 0.995}, average_steps=3)
    meta = json.loads(json.dumps(point.to_metadata()))
    assert meta["format"] == "speechrnn-detector/1"
    assert OperatingPoint.from_metadata(meta, LABELS, "m.onnx") == point
    with pytest.raises(CheckpointError, match="name every keyword"):
        OperatingPoint.from_metadata({**meta, "thresholds": {"yes": 0.9}}, LABELS, "m.onnx")
    with pytest.raises(CheckpointError, match="out of range"):
        OperatingPoint.from_metadata({**meta, "average_steps": 0}, LABELS, "m.onnx")
    with pytest.raises(CheckpointError, match="speechrnn-detector/1"):
        OperatingPoint.from_metadata([1], LABELS, "m.onnx")


def test_a_shared_threshold_is_the_lowest_that_keeps_the_budget() -> None:
    wave, posteriors, events = _scene()
    point, summary = calibrate(wave, posteriors, LABELS, events, 0.03, averages=(1,), grid=GRID)
    assert point.thresholds == {"yes": 0.995, "no": 0.995}  # above the false no's 0.99
    assert summary == {"average_steps": 1, "hits": 3, "misses": 3, "false_alarms": 0}


def test_a_checkpoint_carries_its_operating_point(tmp_path: Path) -> None:
    config = ModelConfig(causal=True, bidirectional=False, hidden_size=8, conv_channels=2)
    model = StackedLSTMClassifier(LABELS, FeatureConfig(), config)
    point = OperatingPoint({"yes": 0.97, "no": 0.995}, average_steps=2)
    path = model.save(tmp_path / "listener.pt", detector=point.to_metadata())
    assert load_checkpoint(path).config == config  # readers of the model ignore the key
    raw = torch.load(path, weights_only=True)
    assert OperatingPoint.from_metadata(raw["detector"], LABELS, str(path)) == point
