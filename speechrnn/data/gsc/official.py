"""The official separate GSC test set (data.test_set): downloaded or local, indexed as one split."""

from __future__ import annotations

import os
from pathlib import Path

from speechrnn.data.corpus import Corpus, extract_dir
from speechrnn.data.index import CorpusIndex, scan_wavs
from speechrnn.data.settings import OFFICIAL_TEST_SET, DataConfig, cache_root
from speechrnn.errors import DataError
from speechrnn.labels import RESERVED_PREFIX, SILENCE, UNKNOWN

SPECIAL_FOLDERS = (SILENCE, UNKNOWN)


def open_test_set(data: DataConfig, progress: bool = True) -> Corpus:
    """data.test_set as a corpus whose test split is every clip (train/validation are empty)."""
    return Corpus(
        scan_test_set(resolve_test_set(data, progress)),
        cache_root(data),
        progress,
        data.cache_workers,
    )


def resolve_test_set(data: DataConfig, progress: bool = True) -> Path:
    """official: data.test_url downloaded, verified and extracted once; else a local dir as-is."""
    assert data.test_set is not None
    if data.test_set == OFFICIAL_TEST_SET:
        from speechrnn.data.gsc.download import Archive, ensure_extracted

        assert data.test_url is not None
        archive = Archive(data.test_url, data.test_sha256, ("data.test_url", "data.test_sha256"))
        dest = extract_dir(data, data.test_url, f"{data.name}_test_set")
        return ensure_extracted(archive, dest, cache_root(data) / "downloads", progress)
    root = Path(data.test_set).expanduser().absolute()
    if not root.is_dir():
        raise DataError(
            f"data.test_set: {root} is not a directory (give official, or a dir in the official "
            "test-set layout: word folders plus _silence_/ and _unknown_/)"
        )
    return root


def scan_test_set(root: Path) -> CorpusIndex:
    """Index a dir in the official test-set layout: word folders, `_silence_/`, `_unknown_/`."""
    stats: dict[str, tuple[int, int]] = {}
    folders = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        wanted = entry.name in SPECIAL_FOLDERS or not entry.name.startswith(RESERVED_PREFIX)
        if wanted and entry.is_dir() and scan_wavs(Path(entry.path), entry.name, stats):
            folders.append(entry.name)
    words = tuple(f for f in folders if f not in SPECIAL_FOLDERS)
    missing = [f"{f}/" for f in SPECIAL_FOLDERS if not (root / f).is_dir()]
    if missing or not words:
        lacks = " and ".join(missing) if missing else "word folders with .wav files"
        raise DataError(
            f"data.test_set: {root} is not in the official test-set layout (no {lacks}; "
            "expected word folders plus _silence_/ and _unknown_/)"
        )
    splits = {"train": (), "validation": (), "test": tuple(sorted(stats))}
    return CorpusIndex(root, words, splits, (), stats)
