"""A cache that is damaged, full or built by several runs at once is detected, never trusted."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from speechrnn.data import cache
from speechrnn.data.cache import load_split_cache
from speechrnn.data.index import scan_corpus
from speechrnn.errors import DataError


@pytest.fixture
def corpus(toy_corpus: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(toy_corpus, tmp_path / "corpus"))


def _build(corpus: Path, root: Path) -> cache.CachedSplit:
    return load_split_cache(scan_corpus(corpus), "train", root, progress=False)


def _damage_manifest(entry: cache.CachedSplit) -> None:
    path = entry.file.parent / "train.json"
    manifest = json.loads(path.read_text())
    manifest["paths"][0] = manifest["paths"][1]  # a flipped entry, digest unchanged
    path.write_text(json.dumps(manifest))


def _truncate(entry: cache.CachedSplit) -> None:
    size = entry.file.stat().st_size
    with entry.file.open("r+b") as handle:
        handle.truncate(size - 32000)


@pytest.mark.parametrize("damage", [_damage_manifest, _truncate])
def test_damaged_cache_is_detected_and_rebuilt(
    corpus: Path, tmp_path: Path, damage, caplog
) -> None:
    first = _build(corpus, tmp_path / "c")
    expected = np.array(first.waves)
    damage(first)
    again = _build(corpus, tmp_path / "c")
    np.testing.assert_array_equal(np.array(again.waves), expected)
    assert again.paths == first.paths
    assert "damaged cache entry" in caplog.text


def test_full_disk_is_one_error_and_leaves_nothing(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    def no_space(fd: int, offset: int, size: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "posix_fallocate", no_space)
    with pytest.raises(
        DataError, match=r"cannot write the train cache \(No space left on device\)"
    ):
        _build(corpus, tmp_path / "c")
    folder = next((tmp_path / "c" / "waves").iterdir())
    assert [p.name for p in folder.iterdir()] == [".train.lock"]


def test_stale_temp_of_a_killed_build_is_swept(corpus: Path, tmp_path: Path) -> None:
    folder = cache.corpus_cache_dir(tmp_path / "c", corpus)
    folder.mkdir(parents=True)
    stale = folder / "train.building-otherhost-1.npy"
    stale.write_bytes(b"half")
    _build(corpus, tmp_path / "c")
    assert not stale.exists()


def test_concurrent_builders_build_once(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    builds: list[int] = []
    real = cache._build_split

    def counted(*args, **kwargs) -> None:
        builds.append(1)
        real(*args, **kwargs)

    monkeypatch.setattr(cache, "_build_split", counted)
    results: list[cache.CachedSplit] = []
    threads = [
        threading.Thread(target=lambda: results.append(_build(corpus, tmp_path / "c")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 3 and builds == [1]
