"""Fixed evaluation sets: a split's clips mapped to a model's labels, plus seeded silence clips."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechrnn.audio import CLIP_SAMPLES, to_pcm16
from speechrnn.data.cache import CachedSplit
from speechrnn.data.corpus import Corpus, open_corpus
from speechrnn.data.gsc.official import open_test_set
from speechrnn.data.index import TaskPlan, plan_task
from speechrnn.data.settings import DataConfig
from speechrnn.errors import ConfigError, DataError
from speechrnn.labels import SILENCE, SPLITS, keywords

log = logging.getLogger(__name__)

DEFAULT_SHARE = 0.1  # for labels with _silence_/_unknown_ when the data config's share is 0


@dataclass(frozen=True)
class SplitData:
    """An evaluation set: waves[i] is clip paths[i] of speaker speakers[i], label targets[i]."""

    split: str
    labels: list[str]
    waves: np.ndarray  # (N, 16000) int16; the cache's memmap when every clip is used as-is
    targets: np.ndarray  # (N,) int64 indices into labels
    paths: list[str]  # corpus-relative, or _silence_/<noise file>#<offset>
    speakers: list[str]  # "" for silence clips
    root: Path

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def load_split(
    data: DataConfig, split: str, labels: Sequence[str], seed: int = 0, progress: bool = False
) -> SplitData:
    """A split of data's corpus for a model with `labels` (e.g. a checkpoint's), built once.

    With data.test_set the test split is that separate test set (see `test_set_split`).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if data.test_set is not None:
        if split != "test":
            raise ConfigError(
                f"data.test_set={data.test_set} replaces the test split only: use it with "
                f"split=test, not split={split} (or set data.test_set=null)"
            )
        return test_set_split(open_test_set(data, progress), labels)
    return compose_split(open_corpus(data, progress), split, labels, data, seed)


def training_plan(
    words: Sequence[str],
    labels: Sequence[str],
    data: DataConfig,
    negatives_from: int | None = None,
) -> TaskPlan:
    """The label plan of the clips trained on: data's shares and its `_unknown_` draw, the
    negative speech from row `negatives_from` on."""
    return plan_task(
        words,
        labels,
        data.silence_share,
        data.unknown_share,
        data.unknown_draw,
        negatives_from,
        data.negatives_share,
    )


def eval_plan(
    corpus: Corpus, split: str, labels: Sequence[str], data: DataConfig
) -> tuple[CachedSplit, TaskPlan]:
    """The split's cache and its label plan; absent shares fall back to DEFAULT_SHARE."""
    cached = corpus.split(split)
    silence_share = data.silence_share or DEFAULT_SHARE
    unknown_share = data.unknown_share or DEFAULT_SHARE
    return cached, plan_task(cached.words, labels, silence_share, unknown_share)


def compose_split(
    corpus: Corpus, split: str, labels: Sequence[str], data: DataConfig, seed: int = 0
) -> SplitData:
    """Known clips + a fixed seeded _unknown_ draw (clip order), then seeded _silence_ clips."""
    cached, plan = eval_plan(corpus, split, labels, data)
    if not plan.known.size and cached.words:
        raise _no_shared_words(corpus, split, labels, cached.words)
    rows = plan.eval_rows(seed)  # (M,)
    silence, silence_paths = silence_clips(corpus, plan.n_silence, seed, split)  # (S, T)
    targets = np.concatenate([plan.targets[rows], np.full(plan.n_silence, plan.silence_target)])
    return _gather(corpus, split, labels, cached, rows, targets, silence, silence_paths)


def test_set_split(corpus: Corpus, labels: Sequence[str]) -> SplitData:
    """Every clip of a separate test set (official layout) as it is: no draws, no synthesis.

    Word folders map to `labels` (other words to _unknown_), `_unknown_/` and `_silence_/` to
    those labels; clips with no label in `labels` are left out, said in one warning line.
    """
    cached = corpus.split("test")
    words = keywords(labels)
    if not set(words) & set(cached.words):
        raise _no_shared_words(corpus, "test", labels, cached.words)
    targets = plan_task(cached.words, labels, 0.0, 0.0).targets  # (N,)
    rows = np.flatnonzero(targets >= 0)  # (M,)
    left_out = Counter(cached.words[r] for r in np.flatnonzero(targets < 0))
    if left_out:
        log.warning(
            "%s: left out %s: the model has no label for them",
            corpus.root,
            ", ".join(f"{n} {word} clips" for word, n in sorted(left_out.items())),
        )
    return _gather(corpus, "test", labels, cached, rows, targets[rows])


def _gather(
    corpus: Corpus,
    split: str,
    labels: Sequence[str],
    cached: CachedSplit,
    rows: np.ndarray,
    targets: np.ndarray,
    silence: np.ndarray | None = None,
    silence_paths: Sequence[str] = (),
) -> SplitData:
    """Cached clips `rows` then `silence` clips (S, T), with `targets` for them all."""
    if not len(targets):
        raise DataError(
            f"{corpus.root}: the {split} split has no clips for labels {', '.join(labels)}"
        )
    if rows.size == cached.waves.shape[0] and not len(silence_paths):
        waves = cached.waves
    else:
        extra = np.zeros((0, CLIP_SAMPLES), np.int16) if silence is None else silence
        waves = np.concatenate([cached.waves[rows], extra])
    return SplitData(
        split=split,
        labels=list(labels),
        waves=waves,
        targets=targets,
        paths=[cached.paths[r] for r in rows] + list(silence_paths),
        speakers=[cached.speakers[r] for r in rows] + [""] * len(silence_paths),
        root=corpus.root,
    )


def _no_shared_words(
    corpus: Corpus, split: str, labels: Sequence[str], split_words: Sequence[str]
) -> DataError:
    words = keywords(labels)
    return DataError(
        f"{corpus.root}: the labels' words ({', '.join(words)}) share nothing with the "
        f"{split} split's words ({', '.join(sorted(set(split_words)))})"
    )


def silence_clips(
    corpus: Corpus, count: int, seed: int, split: str
) -> tuple[np.ndarray, list[str]]:
    """`count` int16 silence clips cut from the noise bank, fixed by (seed, split)."""
    if not count:
        return np.zeros((0, CLIP_SAMPLES), np.int16), []
    bank = corpus.noise()
    state = np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0]
    gen = torch.Generator().manual_seed(int(state))
    waves, files, offsets = bank.silence(count, gen)  # (S, T), (S,), (S,)
    paths = [
        f"{SILENCE}/{bank.names[f]}#{o}"
        for f, o in zip(files.tolist(), offsets.tolist(), strict=True)
    ]
    return to_pcm16(waves.numpy()), paths
