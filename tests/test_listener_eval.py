"""A listener in the streaming evaluation: its steps through the same sweep, its shipped point."""

from __future__ import annotations

import numpy as np
import pytest

from speechrnn.evaluation.longform import Event
from speechrnn.evaluation.scans import StepScan
from speechrnn.evaluation.shipped_point import score_point
from speechrnn.evaluation.spotting import match, sweep_scan
from speechrnn.inference.operating_point import OperatingPoint, detections

from support.inference import step_scene

LABELS = ["_silence_", "_unknown_", "yes", "no"]
STEP = 480


def _scene() -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """20 s: a yes at 3 s (peak 0.9), a no at 8 s (0.99), a yes at 13 s (0.97) and a false no
    over another word at 17 s (0.8); step posteriors peak just after each word."""
    words = [("yes", 3, 0.9), ("no", 8, 0.99), ("yes", 13, 0.97), ("no", 17, 0.8)]
    wave, posteriors = step_scene(20, LABELS, words, STEP)
    events = [
        Event(label if second < 17 else "_unknown_", second + 0.35, second + 0.65)
        for label, second, _ in words
    ]
    return wave, posteriors, events


def test_a_listeners_sweep_is_its_operating_point_at_each_threshold() -> None:
    wave, posteriors, events = _scene()
    point = OperatingPoint({"yes": 0.5, "no": 0.5}, step_seconds=STEP / 16000)
    scan = StepScan(wave, posteriors, LABELS, point)
    result = sweep_scan(scan, events, 0.5, [0.7, 0.85, 0.95, 0.98, 0.995], 0.7)
    assert result["detector"]["kind"] == "listener"
    misses = [round(f * 3) for f in result["overall"]["frr_raw"]]
    false_alarms = [round(f * result["hours"]) for f in result["overall"]["fa_per_hour_raw"]]
    assert misses == [0, 0, 1, 2, 3] and false_alarms == [1, 0, 0, 0, 0]
    for threshold, missed in zip(result["thresholds"], misses, strict=True):
        at = OperatingPoint({"yes": threshold, "no": threshold}, step_seconds=STEP / 16000)
        assert len(match(events, detections(wave, posteriors, LABELS, at), 0.5).misses) == missed
    delay = result["overall"]["delay"]  # the peaks' steps end 0.05-0.08 s after the words
    assert delay["count"] == 3 and 0.05 <= delay["median"] <= 0.05 + 2 * STEP / 16000


def test_the_shipped_point_is_scored_with_its_own_thresholds() -> None:
    wave, posteriors, events = _scene()
    point = OperatingPoint({"yes": 0.85, "no": 0.995}, step_seconds=STEP / 16000)
    shipped = score_point(StepScan(wave, posteriors, LABELS, point), events, 0.5)
    assert shipped["overall"] == {
        "events": 3,
        "misses": 1,
        "frr": pytest.approx(1 / 3),
        "false_alarms": 0,
        "fa_per_hour": 0.0,
    }
    assert shipped["keywords"]["no"]["misses"] == 1 and shipped["keywords"]["yes"]["misses"] == 0
    assert shipped["point"]["thresholds"] == {"yes": 0.85, "no": 0.995}
