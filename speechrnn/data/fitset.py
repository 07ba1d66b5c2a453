"""The clips a model is fitted on: the train split, or train + validation for a final fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speechrnn.data.cache import CachedSplit
from speechrnn.data.corpus import Corpus
from speechrnn.data.settings import FIT_SETS


class StackedWaves:
    """Row access to several (N_i, T) arrays (the splits' memmaps) as one (sum N_i, T) array."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])  # (P + 1,)
        self.shape = (int(self.offsets[-1]), parts[0].shape[1])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            rows = np.arange(*key.indices(len(self)))  # (M,)
        else:
            rows = np.asarray(key, np.int64)  # (M,)
        out = np.empty((rows.size, self.shape[1]), self.dtype)  # (M, T)
        part = np.searchsorted(self.offsets, rows, side="right") - 1  # (M,)
        for i, waves in enumerate(self.parts):
            picked = np.flatnonzero(part == i)
            if picked.size:
                out[picked] = waves[rows[picked] - self.offsets[i]]
        return out


@dataclass(frozen=True)
class FitSet:
    """The fitted clips: waves[i] is paths[i], a clip of words[i]; the train split's come first,
    the negatives (all `_unknown_`) last."""

    fit_on: str
    waves: np.ndarray | StackedWaves  # (N, T) int16
    words: tuple[str, ...]
    paths: tuple[str, ...]
    train_clips: int  # how many of them come from the train split (they come first)
    negatives_from: int | None = None  # the first row of the negatives, when there are some

    @property
    def final(self) -> bool:
        return self.fit_on != "train"


def fit_set(corpus: Corpus, fit_on: str, negatives: CachedSplit | None = None) -> FitSet:
    """The train split's clips, then those of the other splits that `fit_on` names, then the
    negative speech (`open_negatives`) when given."""
    parts = [corpus.split(name) for name in FIT_SETS[fit_on]]
    first_negative = sum(len(p.words) for p in parts) if negatives is not None else None
    parts += [negatives] if negatives is not None else []
    waves = parts[0].waves if len(parts) == 1 else StackedWaves([p.waves for p in parts])
    return FitSet(
        fit_on=fit_on,
        waves=waves,
        words=tuple(w for p in parts for w in p.words),
        paths=tuple(path for p in parts for path in p.paths),
        train_clips=len(parts[0].words),
        negatives_from=first_negative,
    )
