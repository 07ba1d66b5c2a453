"""Corpus index (words, speakers, official splits) and task plans (labels, shares, unknowns)."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from speechrnn.data.index import TaskPlan, plan_task, scan_corpus, speaker_of, task_labels, word_of
from speechrnn.errors import DataError
from speechrnn.labels import NOISE_DIR, SILENCE, SPLITS, UNKNOWN

from support.real import REAL_DEV as REAL
from support.tones import TOY_OTHERS, TOY_WORDS


def _check_splits(root: Path) -> None:
    index = scan_corpus(root)
    sets = {split: set(index.splits[split]) for split in SPLITS}
    assert all(sets.values())
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    every = {rel for rel in index.stats if word_of(rel) != NOISE_DIR}
    assert set().union(*sets.values()) == every
    speakers = {split: {speaker_of(rel) for rel in sets[split]} for split in SPLITS}
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    assert index.noise and all(word_of(rel) == NOISE_DIR for rel in index.noise)
    assert NOISE_DIR not in index.words


def test_toy_splits_are_disjoint_and_speaker_disjoint(toy_corpus: Path) -> None:
    _check_splits(toy_corpus)
    index = scan_corpus(toy_corpus)
    assert index.words == tuple(sorted(TOY_WORDS + TOY_OTHERS))
    assert len(index.splits["validation"]) == len(index.splits["test"]) == 2 * 13


@pytest.mark.skipif(not REAL.is_dir(), reason="no real GSC slice")
def test_real_slice_splits_are_disjoint_and_speaker_disjoint() -> None:
    _check_splits(REAL)
    assert len(scan_corpus(REAL).words) == 35


def test_speaker_is_the_name_before_nohash() -> None:
    assert speaker_of("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    assert speaker_of("mine/alice.wav") == "alice"


def test_split_lists_naming_missing_files_are_ignored(toy_corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "c"
    shutil.copytree(toy_corpus, root)
    with (root / "validation_list.txt").open("a") as f:
        f.write("yes/gone_nohash_0.wav\n\n")
    assert scan_corpus(root).splits == scan_corpus(toy_corpus).splits


def test_missing_lists_put_everything_in_train(toy_corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "c"
    shutil.copytree(toy_corpus, root)
    (root / "testing_list.txt").unlink()
    (root / "validation_list.txt").unlink()
    index = scan_corpus(root)
    assert not index.splits["validation"] and not index.splits["test"]
    assert len(index.splits["train"]) == 130


@pytest.mark.parametrize("layout", ["missing", "empty", "no_wavs", "only_noise"])
def test_not_a_corpus_is_one_clear_error(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "c"
    if layout != "missing":
        root.mkdir()
    if layout == "no_wavs":
        (root / "yes").mkdir()
        (root / "yes" / "notes.txt").write_text("x")
    if layout == "only_noise":
        (root / NOISE_DIR).mkdir()
        (root / NOISE_DIR / "a.wav").write_bytes(b"")
    with pytest.raises(DataError) as info:
        scan_corpus(root)
    assert str(root) in str(info.value) and "\n" not in str(info.value)


def test_twelve_class_labels_and_35_class_labels() -> None:
    corpus = sorted(TOY_WORDS + TOY_OTHERS)
    twelve = task_labels(TOY_WORDS, corpus, 0.1, 0.1)
    assert twelve == [SILENCE, UNKNOWN, *TOY_WORDS]
    every = task_labels(None, corpus, 0.0, 0.0)
    assert every == corpus
    assert task_labels(TOY_WORDS, corpus, 0.1, 0.0) == [SILENCE, *TOY_WORDS]


def test_label_errors() -> None:
    with pytest.raises(DataError, match=r"data\.words: maybe not found"):
        task_labels(["yes", "maybe"], ["yes", "no"], 0.0, 0.0)
    with pytest.raises(DataError, match="_unknown_ would have no clips"):
        task_labels(None, ["yes", "no"], 0.0, 0.1)


def _toy_plan(silence: float = 0.1, unknown: float = 0.1):
    words = [w for w in TOY_WORDS + TOY_OTHERS for _ in range(6)]
    labels = task_labels(TOY_WORDS, sorted(set(words)), silence, unknown)
    return words, labels, plan_task(words, labels, silence, unknown)


def test_shares_follow_tensorflow() -> None:
    words, labels, plan = _toy_plan(0.1, 0.25)
    known = sum(w in TOY_WORDS for w in words)
    assert plan.known.size == known == 60
    assert plan.n_silence == math.ceil(0.1 * known) == 6
    assert plan.n_unknown == math.ceil(0.25 * known) == 15
    assert plan.unknown_pool.size == 18
    rows = plan.train_rows(seed=0, epoch=0)
    assert rows.size == 60 + 15 + 6 and (rows == -1).sum() == 6
    targets = plan.targets[rows[rows >= 0]]
    assert (targets == labels.index(UNKNOWN)).sum() == 15
    assert all(words[r] == labels[plan.targets[r]] for r in plan.known)


def test_unknown_is_redrawn_each_epoch_but_fixed_for_eval() -> None:
    _, _, plan = _toy_plan(0.1, 0.25)
    pool = set(plan.unknown_pool.tolist())

    def unknown(rows: np.ndarray) -> list[int]:
        return sorted(r for r in rows.tolist() if r in pool)

    epochs = [unknown(plan.train_rows(seed=0, epoch=e)) for e in range(3)]
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert unknown(plan.train_rows(seed=0, epoch=1)) == epochs[1]
    assert not np.array_equal(plan.train_rows(0, 0), plan.train_rows(1, 0))
    fixed = plan.eval_rows(seed=0)
    assert np.array_equal(fixed, plan.eval_rows(seed=0))
    assert np.all(np.diff(fixed) > 0)
    assert len(unknown(fixed)) == 15


def test_word_draw_gives_every_other_word_the_same_share() -> None:
    words = ["yes"] * 40 + ["a"] * 2 + ["b"] * 14 + ["c"] * 4
    labels = task_labels(["yes"], sorted(set(words)), 0.0, 0.5)
    by_clip, by_word = (plan_task(words, labels, 0.0, 0.5, draw) for draw in ("clip", "word"))

    def drawn(plan: TaskPlan) -> Counter[str]:
        rows = np.concatenate([plan.train_rows(seed=0, epoch=e) for e in range(300)])
        return Counter(words[r] for r in rows if words[r] != "yes")

    clip, word = drawn(by_clip), drawn(by_word)
    assert clip == {"a": 600, "b": 4200, "c": 1200}  # the whole pool each epoch
    assert sum(word.values()) == 6000 and max(word.values()) < 1.15 * min(word.values())
    assert by_clip.unknown_p is None
    assert np.array_equal(by_word.train_rows(2, 5), by_word.train_rows(2, 5))
    assert np.array_equal(by_word.eval_rows(seed=0), by_clip.eval_rows(seed=0))


def test_35_class_plan_has_no_specials() -> None:
    words = ["a", "b", "c", "a"]
    labels = task_labels(None, ["a", "b", "c"], 0.0, 0.0)
    plan = plan_task(words, labels, 0.0, 0.0)
    assert plan.n_silence == plan.n_unknown == 0 and plan.silence_target == -1
    assert plan.targets.tolist() == [0, 1, 2, 0]
    assert sorted(plan.train_rows(0, 0).tolist()) == [0, 1, 2, 3]


def test_words_outside_labels_without_unknown_are_left_out() -> None:
    plan = plan_task(["a", "b", "x"], ["a", "b"], 0.0, 0.5)
    assert plan.targets.tolist() == [0, 1, -1] and plan.n_unknown == 0
    assert plan.eval_rows(0).tolist() == [0, 1]


def test_eval_never_repeats_a_clip_when_the_unknown_pool_is_small() -> None:
    _, labels, plan = _toy_plan(0.1, 0.5)
    assert plan.n_unknown == 30 > plan.unknown_pool.size == 18
    fixed = plan.eval_rows(seed=3)
    assert np.unique(fixed).size == fixed.size == 60 + 18
    assert set(plan.unknown_pool.tolist()) <= set(fixed.tolist())
    train = plan.train_rows(seed=3, epoch=0)
    assert (plan.targets[train[train >= 0]] == labels.index(UNKNOWN)).sum() == 30
