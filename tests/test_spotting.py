"""Long recordings and keyword-spotting scores: builder, labels files, matcher, threshold sweep."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from speechrnn.audio import SAMPLE_RATE
from speechrnn.errors import ConfigError, DataError
from speechrnn.evaluation.longform import (
    Event,
    LongformConfig,
    build_recording,
    read_labels,
    speech_extent,
    write_labels,
)
from speechrnn.evaluation.scans import trigger_times
from speechrnn.evaluation.spotting import match, sweep
from speechrnn.inference.decisions import Detection
from speechrnn.inference.streaming import StreamConfig, detect, window_starts

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def _tone(freq: float, seconds: float = 0.6) -> np.ndarray:
    """A 1 s clip: a tone of `seconds` starting at 0.2 s, silence around it."""
    clip = np.zeros(SAMPLE_RATE, np.float32)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clip[3200 : 3200 + t.size] = 0.5 * np.sin(2 * np.pi * freq * t)
    return clip


def _clips() -> tuple[list, list]:
    commands = [("yes", _tone(440.0), "yes/a.wav"), ("no", _tone(660.0, 0.4), "no/b.wav")]
    unknown = [("_unknown_", _tone(300.0, 0.5), "cat/c.wav")]
    return commands, unknown


def test_builder_is_deterministic_from_its_seed() -> None:
    commands, unknown = _clips()
    noise = [np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE).astype(np.float32)]
    config = LongformConfig(duration=60.0, seed=3)
    a, b = (build_recording(commands, unknown, noise, config) for _ in range(2))
    assert np.array_equal(a.wave, b.wave) and a.events == b.events
    other = build_recording(commands, unknown, noise, LongformConfig(duration=60.0, seed=4))
    assert other.events != a.events
    assert a.seconds == 60.0 and {e.label for e in a.events} == {"yes", "no", "_unknown_"}


def test_builder_places_every_clip_where_its_labels_say() -> None:
    commands, unknown = _clips()
    silent = [np.zeros(SAMPLE_RATE, np.float32)]  # no noise: the wave is the placed clips alone
    config = LongformConfig(duration=120.0, seed=0, snrs=(10.0,), noise_db=-30.0)
    rec = build_recording(commands, unknown, silent, config)
    clips = {source: clip for _, clip, source in commands + unknown}
    covered = np.zeros(rec.wave.shape[0], bool)
    for event in rec.events:
        clip = clips[event.source]
        offset = round(event.clip_start * SAMPLE_RATE)
        placed = rec.wave[offset : offset + SAMPLE_RATE]
        gain = float(np.abs(placed).max() / np.abs(clip).max())
        assert np.allclose(placed, gain * clip, atol=1e-6)
        assert 20 * np.log10(gain * 0.5 / np.sqrt(2)) == pytest.approx(-30.0 + 10.0, abs=0.5)
        start, end = speech_extent(clip)
        assert event.start == pytest.approx(event.clip_start + start, abs=1e-3)
        assert event.end == pytest.approx(event.clip_start + end, abs=1e-3)
        assert abs(event.start - event.clip_start - 0.2) < 0.03  # the tone starts at 0.2 s
        assert not covered[offset : offset + SAMPLE_RATE].any()  # clips never overlap
        covered[offset : offset + SAMPLE_RATE] = True
    assert not rec.wave[~covered].any()  # and nothing else was written
    assert len(rec.events) > 20 and rec.events[-1].clip_start + 1.0 <= 120.0


def test_labels_file_round_trip_and_its_errors(tmp_path: Path) -> None:
    events = [Event("yes", 1.25, 1.75, 1.0, 10.0, "yes/a.wav"), Event("_unknown_", 4.0, 4.5)]
    write_labels(events, tmp_path / "labels.tsv")
    back = read_labels(tmp_path / "labels.tsv", LABELS, 10.0)
    assert [(e.label, e.start, e.end) for e in back] == [(e.label, e.start, e.end) for e in events]
    (tmp_path / "plain.csv").write_text("yes,2.5\nno,3.0,3.4\n")
    assert read_labels(tmp_path / "plain.csv", LABELS, 10.0) == [
        Event("yes", 2.5, 2.5),
        Event("no", 3.0, 3.4),
    ]
    (tmp_path / "word.csv").write_text("yes,1.0\nmaybe,2.0\n")
    with pytest.raises(DataError, match=r"word.csv:2: the model has no label 'maybe'"):
        read_labels(tmp_path / "word.csv", LABELS, 10.0)
    (tmp_path / "late.csv").write_text("yes,9.5,10.5\n")
    with pytest.raises(DataError, match=r"late.csv:1: times 9.5-10.5 s lie outside"):
        read_labels(tmp_path / "late.csv", LABELS, 10.0)


def _det(label: str, start: float, end: float) -> Detection:
    return Detection(label, start, end, 0.9)


def test_matcher_counts_hits_misses_and_false_alarms() -> None:
    events = [
        Event("yes", 10.0, 10.5),
        Event("no", 20.0, 20.4),
        Event("_unknown_", 30.0, 30.5),
        Event("yes", 40.0, 40.5),
    ]
    edge = _det("yes", 11.0, 11.2)  # starts exactly `tolerance` after the word ends: a hit
    twice = _det("yes", 10.1, 10.6)  # a second detection of the same command: a false alarm
    beyond = _det("no", 20.91, 21.2)  # just past the tolerance: a false alarm, and a miss
    in_noise = _det("no", 50.0, 50.3)
    in_other_word = _det("yes", 30.1, 30.4)
    result = match(events, [edge, twice, beyond, in_noise, in_other_word], tolerance=0.5)
    assert len(result.hits) == 1 and result.hits[0][0] == 0
    assert result.misses == [1, 3]  # _unknown_ is never a miss
    assert len(result.false_alarms) == 4
    assert match(events[:1], [_det("no", 10.0, 10.5)], 0.5).false_alarms == [0]  # wrong label
    nearest = match([*events[:1], Event("yes", 11.2, 11.5)], [_det("yes", 11.1, 11.3)], 0.5)
    assert nearest.hits == [(1, 0)] and nearest.misses == [0]


def _posteriors(levels: list[float], steps: int = 10) -> np.ndarray:
    """(N, 4) window posteriors: 'yes' held at each level for `steps` windows in turn."""
    rows = np.repeat(np.array(levels), steps)  # (N,)
    out = np.zeros((rows.size, 4))
    out[:, 2] = rows
    out[:, 0] = 1.0 - rows
    return out


def test_sweep_curve_is_monotone_though_the_detector_is_not() -> None:
    # yes rises to 0.8, dips to 0.65, rises again: one detection at threshold 0.6, two at 0.7.
    config = StreamConfig(stride=0.1, average=0.0, suppress=0.0)
    posteriors = _posteriors([0.0, 0.8, 0.65, 0.8, 0.0, 0.0, 0.95, 0.0, 0.0])
    samples = (posteriors.shape[0] - 9) * config.hop  # windows cover the audio as iter_windows'
    wave = np.zeros(samples, np.float32)
    assert window_starts(samples, config.hop).size == posteriors.shape[0]
    events = [Event("yes", 6.5, 7.0)]
    result = sweep(wave, posteriors, LABELS, events, config, 1.0, thresholds=[0.6, 0.7, 0.9])
    overall = result["overall"]
    assert result["thresholds"] == [0.6, 0.7, 0.9]
    fa_raw = np.array(overall["fa_per_hour_raw"]) * result["hours"]
    assert fa_raw.round().tolist() == [1, 2, 0]  # the raw counts are not monotone...
    assert overall["fa_per_hour"] == sorted(overall["fa_per_hour"], reverse=True)
    assert overall["frr"] == sorted(overall["frr"])  # ...the curve is
    assert overall["frr_raw"] == [0.0, 0.0, 0.0]
    assert overall["threshold_at_target"] == 0.9 and overall["frr_at_target"] == 0.0
    assert result["keywords"]["yes"]["events"] == overall["events"] == 1
    missed = sweep(wave, posteriors, LABELS, [*events, Event("yes", 1.0, 1.2), Event("no", 3, 3.1)],
                   config, 0.0, thresholds=[0.9])["overall"]  # fmt: skip
    assert missed["events"] == 3 and missed["frr_raw"][0] == pytest.approx(2 / 3)


def test_trigger_time_is_when_the_detection_fires() -> None:
    config = StreamConfig(stride=0.1, average=0.3, suppress=1.0, threshold=0.7)
    posteriors = _posteriors([0.0, 0.0, 0.95, 0.0, 0.0])
    samples = (posteriors.shape[0] - 9) * config.hop
    wave = np.zeros(samples, np.float32)
    wave[2 * SAMPLE_RATE : 2 * SAMPLE_RATE + 4000] = 0.5  # something to endpoint
    (found,) = detect(wave, posteriors, LABELS, config)
    starts = window_starts(samples, config.hop) / SAMPLE_RATE
    fired = np.flatnonzero(np.convolve(posteriors[:, 2], np.ones(3) / 3)[: len(starts)] >= 0.7)
    assert trigger_times(samples, posteriors, LABELS, config, [found]) == [
        pytest.approx(starts[fired[0]] + 1.0)
    ]


def test_trigger_time_stays_at_its_word_when_the_stored_probability_is_rounded() -> None:
    config = StreamConfig(stride=0.1, average=0.0, suppress=1.0, threshold=0.7)
    posteriors = _posteriors([0.0, 0.9, 0.0, *[0.0] * 60, 0.9 + 1e-6, 0.0])
    samples = (posteriors.shape[0] - 9) * config.hop
    wave = np.zeros(samples, np.float32)
    wave[SAMPLE_RATE : SAMPLE_RATE + 4000] = 0.5
    found = detect(wave, posteriors, LABELS, config)[0]
    rounded = dataclasses.replace(found, probability=found.probability + 1e-6)
    (exact,) = trigger_times(samples, posteriors, LABELS, config, [found])
    assert found.start <= exact <= found.end + 1.0
    # The later window holds the rounded value exactly, but it lies 6 s past this word.
    assert trigger_times(samples, posteriors, LABELS, config, [rounded]) == [exact]


def test_bad_longform_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="duration"):
        LongformConfig(duration=1.0)
    with pytest.raises(ConfigError, match="gap"):
        LongformConfig(gap=(3.0, 1.0))
