"""Takes of a new word: found by energy in one recording or one per file, and every problem
(silent, clipped, too short, too long, too few) one line naming where it is."""

from __future__ import annotations

import numpy as np
import pytest

from speechrnn.inference.takes import TakeError, TakeLimits, find_takes, utterances

from support.inference import RATE, speechlike

GAP = np.zeros(RATE // 2, np.float32)  # half a second of quiet between takes


def _word(seed: int, seconds: float = 0.4) -> np.ndarray:
    """`seconds` of a voiced burst (the middle of `speechlike`'s, whose edges are 24 dB down)."""
    cut = int((1.0 - seconds) / 2 * RATE)
    return speechlike(seed)[cut:-cut]


def _recording(*words: np.ndarray) -> np.ndarray:
    noise = 1e-3 * np.random.default_rng(0).standard_normal(RATE)
    parts = [GAP]
    for word in words:
        parts += [word, GAP]
    wave = np.concatenate(parts)
    return (wave + np.resize(noise, wave.shape)).astype(np.float32)


def test_one_recording_holds_several_takes_each_centred_in_a_clip() -> None:
    wave = _recording(*(_word(seed) for seed in range(6)))
    found = find_takes([("takes.wav", wave)])
    assert found.clips.shape == (6, RATE)
    starts = [start for _, start, _ in found.spans]
    assert starts == sorted(starts) and all(e - s < 0.6 for _, s, e in found.spans)
    for clip in found.clips:  # the word in the middle of its second
        energy = np.square(clip.reshape(10, -1)).sum(axis=1)
        assert energy[4:6].sum() > 0.6 * energy.sum()
    assert sum(b.shape[0] for b in found.background) > 1.5 * RATE  # the quiet between takes


def test_several_recordings_hold_one_take_each_their_loudest_sound() -> None:
    click = np.zeros(RATE // 10, np.float32)
    click[10] = 0.5
    recordings = [(f"{i}.wav", _recording(click, _word(i))) for i in range(5)]
    found = find_takes(recordings)
    assert [name for name, _, _ in found.spans] == [f"{i}.wav" for i in range(5)]
    assert all(start > 0.6 for _, start, _ in found.spans)  # the word, not the click


@pytest.mark.parametrize(
    ("recording", "needle"),
    [
        (np.zeros(RATE, np.float32), r"take\.wav: silent \(loudest 25 ms at -100 dBFS\)"),
        (_recording(_word(0, 0.08)), r"take\.wav: too short \(0\.\d\d s of sound"),
        (_recording(np.tile(_word(0), 4)), r"take\.wav: too long \(1\.\d\d s of sound, at most 1"),
        (_recording(np.clip(8 * _word(0), -1, 1)), r"take\.wav: clipped \(\d+\.\d% of its"),
        (0.1 * np.random.default_rng(1).standard_normal(RATE), "no word stands out"),
    ],
)
def test_a_bad_take_is_one_line_naming_its_recording(recording: np.ndarray, needle: str) -> None:
    others = [(f"{i}.wav", _recording(_word(i))) for i in range(5)]
    with pytest.raises(TakeError, match=needle) as caught:
        find_takes([("take.wav", recording.astype(np.float32)), *others])
    assert len(caught.value.problems) == 1 and "\n" not in str(caught.value)


def test_too_few_takes_say_how_many_are_needed() -> None:
    with pytest.raises(TakeError, match=r"3 takes found in 1 recordings; say the word at least 5"):
        find_takes([("takes.wav", _recording(*(_word(s) for s in range(3))))])
    assert find_takes(
        [("takes.wav", _recording(*(_word(s) for s in range(3))))], TakeLimits(min_takes=3)
    ).clips.shape == (3, RATE)


def test_every_problem_is_listed_and_the_first_is_the_message() -> None:
    recordings = [("a.wav", np.zeros(RATE, np.float32)), ("b.wav", np.zeros(RATE, np.float32))]
    with pytest.raises(TakeError) as caught:
        find_takes(recordings)
    assert [p.split(":")[0] for p in caught.value.problems] == ["a.wav", "b.wav"]
    assert str(caught.value).endswith("(and 1 more)")


def test_pauses_inside_a_word_do_not_split_it() -> None:
    closure = np.zeros(int(0.2 * RATE), np.float32)  # "st-op", "hap-py"
    spans = utterances(_recording(np.concatenate([_word(0, 0.25), closure, _word(1, 0.25)])))
    assert isinstance(spans, list) and len(spans) == 1
