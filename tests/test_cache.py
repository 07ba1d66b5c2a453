"""Decode-once cache: built once, rebuilt on change, corrupt clips skipped, never half-written."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechrnn.audio import load_audio, to_pcm16
from speechrnn.data import cache
from speechrnn.data.cache import load_noise_cache, load_split_cache
from speechrnn.data.index import scan_corpus


@pytest.fixture
def corpus(toy_corpus: Path, tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(toy_corpus, root)
    return root


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the clips the cache decodes, in order."""
    calls: list[str] = []

    def counting(path: Path) -> np.ndarray:
        calls.append(Path(path).name)
        return load_audio(path)

    monkeypatch.setattr(cache, "load_audio", counting)
    return calls


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_builds_once_then_memory_maps(corpus: Path, tmp_path: Path, decodes: list[str]) -> None:
    before = _files(corpus)
    index = scan_corpus(corpus)
    first = load_split_cache(index, "validation", tmp_path / "cache", progress=False)
    assert len(decodes) == len(index.splits["validation"]) == 26
    second = load_split_cache(scan_corpus(corpus), "validation", tmp_path / "cache", progress=False)
    assert len(decodes) == 26
    assert isinstance(second.waves, np.memmap) and second.waves.dtype == np.int16
    assert second.waves.shape == (26, 16000)
    assert second.paths == first.paths == index.splits["validation"]
    assert second.words[0] == second.paths[0].split("/")[0]
    assert second.speakers[0] == second.paths[0].split("/")[1].split("_nohash_")[0]
    assert np.array_equal(second.waves[3], to_pcm16(load_audio(corpus / second.paths[3])))
    assert _files(corpus) == before
    assert second.file.parent.parent.parent == tmp_path / "cache"


def test_pcm16_round_trip_is_exact(corpus: Path) -> None:
    import soundfile as sf

    rel = scan_corpus(corpus).splits["train"][0]
    raw, _ = sf.read(corpus / rel, dtype="int16")
    assert np.array_equal(to_pcm16(load_audio(corpus / rel))[: raw.size], raw)


def test_touching_or_adding_a_file_rebuilds(
    corpus: Path, tmp_path: Path, decodes: list[str]
) -> None:
    load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    built = len(decodes)
    victim = corpus / scan_corpus(corpus).splits["train"][5]
    os.utime(victim, ns=(1, 1))
    load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    assert len(decodes) == 2 * built
    shutil.copy(victim, corpus / "yes" / "newspeaker_nohash_0.wav")
    again = load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    assert len(again.paths) == built + 1 and "yes/newspeaker_nohash_0.wav" in again.paths
    assert len(list((tmp_path / "c").rglob("train-*.npy"))) == 1


def test_corrupt_clips_are_skipped_with_one_warning(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train = scan_corpus(corpus).splits["train"]
    (corpus / train[2]).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    (corpus / train[7]).write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        built = load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "skipped 2 of 78 train clips" in line and train[2] in line and train[7] in line
    assert "\n" not in line
    assert built.skipped == (train[2], train[7])
    assert len(built.paths) == built.waves.shape[0] == 76 and train[2] not in built.paths
    good = built.paths.index(train[8])
    assert np.array_equal(built.waves[good], to_pcm16(load_audio(corpus / train[8])))
    caplog.clear()
    load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    assert not caplog.records


def test_interrupted_build_is_never_used(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def dying(path: Path) -> np.ndarray:
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return load_audio(path)

    monkeypatch.setattr(cache, "load_audio", dying)
    with pytest.raises(KeyboardInterrupt):
        load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    folder = next((tmp_path / "c" / "waves").iterdir())
    assert [p.name for p in folder.iterdir()] == [".train.lock"]  # the lock file only
    monkeypatch.setattr(cache, "load_audio", load_audio)
    built = load_split_cache(scan_corpus(corpus), "train", tmp_path / "c", progress=False)
    assert built.waves.shape == (78, 16000) and np.abs(built.waves[-1]).max() > 0


def test_parallel_build_matches_in_process(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = scan_corpus(corpus)
    serial = load_split_cache(index, "train", tmp_path / "a", progress=False, workers=1)
    monkeypatch.setattr(cache, "PARALLEL_MIN", 0)
    parallel = load_split_cache(index, "train", tmp_path / "b", progress=True, workers=2)
    assert np.array_equal(np.asarray(serial.waves), np.asarray(parallel.waves))
    assert serial.paths == parallel.paths


def test_noise_is_cached_as_float32(corpus: Path, tmp_path: Path) -> None:
    index = scan_corpus(corpus)
    names, waves = load_noise_cache(index, tmp_path / "c")
    assert names == ("hum.wav", "white_noise.wav")
    assert all(w.dtype == np.float32 and w.shape == (48000,) for w in waves)
    assert 0.015 < np.abs(waves[1]).max() < 0.025
    again = load_noise_cache(index, tmp_path / "c")
    assert np.array_equal(again.waves[0], waves[0])
