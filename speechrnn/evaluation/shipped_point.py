"""The operating point a listener ships with, scored on a long recording: misses, false alarms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from speechrnn.audio import SAMPLE_RATE
from speechrnn.evaluation.longform import Event
from speechrnn.evaluation.report import Section
from speechrnn.evaluation.scans import StepScan
from speechrnn.evaluation.spotting import match
from speechrnn.inference.operating_point import detections


def score_point(scan: StepScan, events: Sequence[Event], tolerance: float) -> dict[str, Any]:
    """Misses and false alarms per hour, overall and per keyword, of the detector at the scan's
    own operating point (its per-keyword thresholds, as speechrnn-calibrate wrote them)."""
    found = detections(scan.wave, scan.posteriors, scan.labels, scan.point)
    result = match(events, found, tolerance)
    hours = scan.wave.shape[0] / SAMPLE_RATE / 3600.0
    keywords = list(scan.point.thresholds)

    def stats(key: str) -> dict[str, Any]:
        count = sum(ev.label == key or (key == "overall" and ev.label in keywords) for ev in events)
        misses = sum(key in ("overall", events[e].label) for e in result.misses)
        wrong = sum(key in ("overall", found[d].label) for d in result.false_alarms)
        return {
            "events": count,
            "misses": misses,
            "frr": misses / max(1, count),
            "false_alarms": wrong,
            "fa_per_hour": wrong / hours,
        }

    return {
        "point": scan.point.to_metadata(),
        "hours": hours,
        "overall": stats("overall"),
        "keywords": {k: stats(k) for k in keywords},
    }


def point_text(point: dict[str, Any]) -> str:
    """The thresholds (one shared or per keyword), smoothing and suppression in words."""
    values = sorted(set(point["thresholds"].values()))
    thresholds = (
        f"threshold {values[0]:g}"
        if len(values) == 1
        else "thresholds " + ", ".join(f"{k} {v:g}" for k, v in point["thresholds"].items())
    )
    return (
        f"{thresholds}, {point['average_steps']}-step averaging ({point['step_seconds']:g} s "
        f"steps), {point['suppress']:g} s suppression, fitted to "
        f"{point['target_fa_per_hour']:g} FA/h"
    )


def shipped_section(result: dict[str, Any]) -> Section:
    """The report's part for the operating point the model carries."""
    shipped = result["shipped"]
    rows = [("overall", shipped["overall"])] + [
        (k, v) for k, v in shipped["keywords"].items() if v["events"] or v["false_alarms"]
    ]
    lines = [f"The model carries its operating point: {point_text(shipped['point'])}."]
    negative = result.get("negative_speech", {}).get("shipped")
    if negative is not None:
        lines.append(
            f"On the speech with no command: {negative['overall']['false_alarms']} false "
            f"alarms in {negative['hours']:.2f} h ({negative['overall']['fa_per_hour']:.2f} FA/h)."
        )
    return Section(
        "Streaming: the shipped operating point",
        lines,
        ("keyword", "commands", "misses", "miss rate", "false alarms", "FA/h"),
        [
            (
                name,
                s["events"],
                s["misses"],
                f"{s['frr']:.3f}",
                s["false_alarms"],
                f"{s['fa_per_hour']:.2f}",
            )
            for name, s in rows
        ],
    )
