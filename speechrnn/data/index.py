"""The corpus index: words, speakers, official splits, the task label plans."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechrnn.errors import DataError
from speechrnn.labels import LIST_FILES, NOISE_DIR, RESERVED_PREFIX, SILENCE, UNKNOWN

AUDIO_SUFFIX = ".wav"


def word_of(rel: str) -> str:
    return rel.split("/", 1)[0]


def speaker_of(rel: str) -> str:
    """The speaker id: the file name before `_nohash_` (the whole stem when it has none).

    In the official test set's `_unknown_/<word>_<speaker>_nohash_<n>.wav` the word prefix is
    dropped; its `_silence_/` noise crops have no speaker ("").
    """
    folder = word_of(rel)
    if folder == SILENCE:
        return ""
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    speaker = stem.split("_nohash_", 1)[0]
    return speaker.split("_", 1)[-1] if folder == UNKNOWN else speaker


@dataclass(frozen=True)
class CorpusIndex:
    """Every clip of a corpus by split, its background noise, and file sizes + mtimes."""

    root: Path
    words: tuple[str, ...]
    splits: Mapping[str, tuple[str, ...]]
    noise: tuple[str, ...]
    stats: Mapping[str, tuple[int, int]]

    def fingerprint(self, rel_paths: Sequence[str]) -> str:
        """Changes when any of these files is added, removed, resized or touched."""
        digest = hashlib.sha256()
        for rel in rel_paths:
            size, mtime = self.stats[rel]
            digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
        return digest.hexdigest()


def scan_corpus(root: Path) -> CorpusIndex:
    """Index a GSC-layout dir; DataError when it is missing or holds no word folder with WAVs."""
    if not root.is_dir():
        raise DataError(f"{root}: corpus directory not found")
    stats: dict[str, tuple[int, int]] = {}
    words = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        wanted = entry.name == NOISE_DIR or not entry.name.startswith(RESERVED_PREFIX)
        if entry.is_dir() and wanted:
            found = scan_wavs(Path(entry.path), entry.name, stats)
            if found and entry.name != NOISE_DIR:
                words.append(entry.name)
    if not words:
        raise DataError(
            f"{root}: not a GSC-layout corpus (no word folders with {AUDIO_SUFFIX} files)"
        )
    clips = sorted(rel for rel in stats if word_of(rel) != NOISE_DIR)
    listed = {split: _read_list(root / name, stats) for split, name in LIST_FILES.items()}
    held_out = listed["validation"] | listed["test"]
    splits = {
        "train": tuple(rel for rel in clips if rel not in held_out),
        "validation": tuple(sorted(listed["validation"])),
        "test": tuple(sorted(listed["test"] - listed["validation"])),
    }
    noise = tuple(sorted(rel for rel in stats if word_of(rel) == NOISE_DIR))
    return CorpusIndex(root, tuple(words), splits, noise, stats)


def scan_wavs(folder: Path, word: str, stats: dict[str, tuple[int, int]]) -> bool:
    """Add `word/<file>` -> (size, mtime) to `stats` for each WAV in `folder`; True if any."""
    found = False
    for entry in os.scandir(folder):
        if entry.name.lower().endswith(AUDIO_SUFFIX) and entry.is_file():
            st = entry.stat()
            stats[f"{word}/{entry.name}"] = (st.st_size, st.st_mtime_ns)
            found = True
    return found


def _read_list(path: Path, stats: Mapping[str, tuple[int, int]]) -> set[str]:
    """Clips named in a split list that exist in the corpus (a missing list is empty)."""
    if not path.is_file():
        return set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split list ({exc})") from None
    names = (line.strip().replace("\\", "/") for line in lines)
    return {name for name in names if name in stats and word_of(name) != NOISE_DIR}


def share_count(share: float, known: int) -> int:
    """TensorFlow's speech_commands rule: ceil(share * number of known-word clips)."""
    return math.ceil(share * known - 1e-9) if share > 0 else 0


def task_labels(
    words: Sequence[str] | None,
    corpus_words: Sequence[str],
    silence_share: float,
    unknown_share: float,
) -> list[str]:
    """[_silence_, _unknown_, *words]: the specials only when their share is positive."""
    chosen = sorted(corpus_words) if words is None else list(words)
    missing = [w for w in chosen if w not in corpus_words]
    if missing:
        raise DataError(f"data.words: {', '.join(missing)} not found in the corpus")
    specials = [SILENCE] if silence_share > 0 else []
    if unknown_share > 0:
        if not set(corpus_words) - set(chosen):
            raise DataError(
                "data.unknown_share > 0 but every word of the corpus is in data.words, "
                "so _unknown_ would have no clips (set data.unknown_share=0)"
            )
        specials.append(UNKNOWN)
    return specials + chosen


@dataclass(frozen=True)
class TaskPlan:
    """How one split's clips map to labels: known rows, the _unknown_ pool, the special counts."""

    labels: tuple[str, ...]
    targets: np.ndarray  # (N,) int64 label index per clip row; -1 where unused
    known: np.ndarray  # (K,) rows of labelled words
    unknown_pool: np.ndarray  # (U,) rows whose word is not a label
    n_unknown: int
    n_silence: int
    unknown_p: np.ndarray | None = None  # (U,) training draw probabilities; None: uniform

    @property
    def silence_target(self) -> int:
        """The _silence_ label index; -1 when the labels have none."""
        return self.labels.index(SILENCE) if SILENCE in self.labels else -1

    def train_rows(self, seed: int, epoch: int) -> np.ndarray:
        """One epoch: known rows + unknown resampled for (seed, epoch), shuffled; -1 = silence."""
        rng = np.random.default_rng([seed, epoch])
        rows = np.concatenate(
            [
                self.known,
                self._pick_unknown(rng, self.n_unknown, self.unknown_p),
                np.full(self.n_silence, -1, np.int64),
            ]
        )
        return rows[rng.permutation(rows.shape[0])]

    def eval_rows(self, seed: int) -> np.ndarray:
        """Known rows + a fixed seeded unknown selection, in clip order (silence comes apart).

        A clip is never counted twice: a pool smaller than the share gives all of itself, as in
        TensorFlow's reference pipeline.
        """
        n = min(self.n_unknown, self.unknown_pool.size)
        picked = self._pick_unknown(np.random.default_rng([seed, 1]), n)
        return np.sort(np.concatenate([self.known, picked]))

    def _pick_unknown(
        self, rng: np.random.Generator, n: int, p: np.ndarray | None = None
    ) -> np.ndarray:
        pool = self.unknown_pool
        if n == 0 or pool.size == 0:
            return np.zeros(0, np.int64)
        return np.sort(rng.choice(pool, n, replace=p is not None or n > pool.size, p=p))


def plan_task(
    words: Sequence[str],
    labels: Sequence[str],
    silence_share: float,
    unknown_share: float,
    unknown_draw: str = "clip",
    negatives_from: int | None = None,
    negatives_share: float = 0.5,
) -> TaskPlan:
    """Map clip rows (their words) to `labels`; words outside them feed _unknown_ if it exists.

    `unknown_draw`: training's _unknown_ clips uniform over the pool's clips (clip) or over its
    words (word: each word equally likely, then a clip of it, with replacement). Rows from
    `negatives_from` on are negative speech: they take `negatives_share` of the draw, the corpus's
    own other words the rest (uniform draws would almost never pick the few real ones).
    """
    index = {label: i for i, label in enumerate(labels)}
    word_targets = np.array([index.get(w, -1) for w in words], np.int64)  # (N,)
    known = np.flatnonzero(word_targets >= 0)
    has_unknown = UNKNOWN in index
    pool = np.flatnonzero(word_targets < 0) if has_unknown else np.zeros(0, np.int64)
    targets = word_targets.copy()
    if has_unknown:
        targets[pool] = index[UNKNOWN]
    n_unknown = share_count(unknown_share, known.size) if pool.size else 0
    n_silence = share_count(silence_share, known.size) if SILENCE in index else 0
    p = _word_balanced([words[r] for r in pool]) if unknown_draw == "word" and n_unknown else None
    if negatives_from is not None and n_unknown:
        p = _mixed(pool >= negatives_from, negatives_share, p)
    return TaskPlan(tuple(labels), targets, known, pool, n_unknown, n_silence, p)


def _mixed(negative: np.ndarray, share: float, p: np.ndarray | None) -> np.ndarray | None:
    """Draw probabilities (U,) giving the `negative` rows `share` of the total and the others the
    rest, each group keeping its own relative weights `p` (uniform when None)."""
    if negative.all() or not negative.any():
        return p
    base = np.ones(negative.size) if p is None else p  # (U,)
    own = (1.0 - share) * base / base[~negative].sum()  # (U,)
    return np.where(negative, share * base / base[negative].sum(), own)


def _word_balanced(words: Sequence[str]) -> np.ndarray:
    """Draw probabilities (U,) that give every word the same total, split evenly over its clips."""
    _, inverse, counts = np.unique(np.array(words), return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[inverse])  # (U,)
