"""Long audio: window grid, causal smoothing, detection rules, endpoints, and keyword spotting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speechrnn.errors import ConfigError
from speechrnn.inference.predict import Predictor
from speechrnn.inference.streaming import (
    StreamConfig,
    detect,
    frame_db,
    iter_windows,
    smooth,
    speech_span,
    window_starts,
)

from support.inference import spoken_recording, write
from support.tones import BURST, LABELS, TONES, ToneBackend, tone, tone_scene

RATE = 16_000


def test_windows_cover_every_sample_on_a_grid_anchored_at_zero() -> None:
    hop, clip = 1600, 16000
    starts = window_starts(40_000, hop, clip)
    assert starts[0] > -clip and starts[0] + clip <= hop  # first window just reaches into the audio
    assert starts[-1] < 40_000 <= starts[-1] + hop  # last window starts in the final hop
    assert np.all(np.diff(starts) == hop) and np.all(starts % hop == 0)
    wave = np.arange(1, 40_001, dtype=np.float32)
    windows = np.concatenate(list(iter_windows(wave, hop, batch_size=7, clip=clip)))
    assert windows.shape == (starts.shape[0], clip)
    for row, start in zip(windows[[0, 5, -1]], starts[[0, 5, -1]], strict=True):
        expected = np.zeros(clip, np.float32)
        lo, hi = max(0, start), min(40_000, start + clip)
        expected[lo - start : hi - start] = wave[lo:hi]
        np.testing.assert_array_equal(row, expected)


def test_smoothing_is_a_causal_moving_average() -> None:
    posteriors = np.random.default_rng(0).random((20, 3))
    smoothed = smooth(posteriors, 4)
    np.testing.assert_allclose(smoothed[0], posteriors[0])
    np.testing.assert_allclose(smoothed[10], posteriors[7:11].mean(axis=0))
    np.testing.assert_allclose(smooth(posteriors, 1), posteriors)


def _posteriors(segments: list[tuple[int, int, int]], count: int) -> np.ndarray:
    """(count, 4) one-hot rows: label index for [first, last) windows, else `_silence_`."""
    rows = np.zeros((count, 4))
    rows[:, 2] = 1.0
    for first, last, label in segments:
        rows[first:last] = 0.0
        rows[first:last, label] = 1.0
    return rows


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([(10, 20, 0), (40, 50, 1)], ["low", "high"]),  # two keywords, far apart
        ([(10, 15, 0), (15, 20, 1)], ["low"]),  # the second is over within the suppression time
        ([(10, 15, 0), (15, 30, 1)], ["low", "high"]),  # ... or reported once it has passed
        ([(10, 60, 0)], ["low"]),  # a long run is one detection, not one per suppression period
        ([(10, 20, 0), (35, 45, 0)], ["low", "low"]),  # the same word again after it faded
        ([(10, 30, 2), (40, 60, 3)], []),  # _silence_ and _unknown_ are never reported
    ],
)
def test_detection_rules(segments: list[tuple[int, int, int]], expected: list[str]) -> None:
    config = StreamConfig(stride=0.1, average=0.3, threshold=0.7, suppress=1.0)
    wave = np.zeros(8 * RATE, np.float32)
    posteriors = _posteriors(segments, window_starts(wave.shape[0], config.hop).shape[0])
    found = detect(wave, posteriors, LABELS, config)
    assert [d.label for d in found] == expected
    assert all(d.probability >= 0.7 for d in found)


def test_speech_span_finds_the_burst_inside_the_windows_that_heard_it() -> None:
    wave = tone_scene([("low", 2.3)], 6.0)
    start, end = speech_span(frame_db(wave), first=1.5, last=2.6)
    assert abs(start - 2.3) < 0.02 and abs(end - 2.7) < 0.02


@pytest.mark.parametrize("stride", [0.1, 0.25])
def test_keywords_in_long_audio_are_found_at_their_times(tmp_path: Path, stride: float) -> None:
    events = [("low", 1.0), ("noise", 2.2), ("high", 3.6), ("low", 6.1), ("noise", 7.3)]
    path = write(tmp_path / "scene.wav", tone_scene(events, 9.0))
    model = Predictor(ToneBackend(), stream=StreamConfig(stride=stride))
    result = model.predict(path)
    assert result.duration == pytest.approx(9.0)
    truth = [(label, onset) for label, onset in events if label != "noise"]
    assert [d.label for d in result.detections] == [label for label, _ in truth]
    for found, (_, onset) in zip(result.detections, truth, strict=True):
        assert abs(found.start - onset) <= stride and abs(found.end - (onset + BURST)) <= stride


def test_clip_length_audio_is_classified_not_scanned(tmp_path: Path) -> None:
    wave = np.zeros(RATE, np.float32)
    wave[2000 : 2000 + int(BURST * RATE)] = 0.5 * tone(TONES["high"], BURST)
    result = Predictor(ToneBackend()).predict(write(tmp_path / "c.wav", wave))
    assert result.label == "high" and result.detections is None


def test_scanning_is_batched_identically(tmp_path: Path) -> None:
    path = write(tmp_path / "scene.wav", tone_scene([("low", 1.0), ("high", 3.0)], 5.0))
    one = Predictor(ToneBackend(), stream=StreamConfig(batch_size=1)).predict(path)
    many = Predictor(ToneBackend(), stream=StreamConfig(batch_size=500)).predict(path)
    assert one.detections == many.detections


@pytest.mark.parametrize(
    "kwargs",
    [{"stride": 0.0}, {"stride": 2.0}, {"average": -1.0}, {"threshold": 1.5}, {"suppress": -0.1}],
)
def test_bad_stream_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        StreamConfig(**kwargs)


def test_trained_model_spots_spoken_words_in_a_long_recording(
    tmp_path: Path, trained_checkpoint: Path, small_corpus: Path
) -> None:
    """Words the model knows, with silence, noise and an unknown word between them."""
    from speechrnn.inference.predict import load_model

    stride = 0.1
    model = load_model(trained_checkpoint, stream=StreamConfig(stride=stride))
    script = ["yes", "left", "cat", "down", "no", "right", "up", "yes"]
    wave, truth = spoken_recording(model, small_corpus, script)
    path = write(tmp_path / "long.wav", wave)
    found = model.predict(path).detections
    assert [d.label for d in found] == [word for word, _, _ in truth]
    for detection, (_, start, end) in zip(found, truth, strict=True):
        assert abs(detection.start - start) <= stride and abs(detection.end - end) <= stride
