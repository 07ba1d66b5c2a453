"""Decode-once cache: each split's clips as one int16 (N, 16000) .npy memmap + a JSON manifest.

Builders take an flock on `<folder>/.<name>.lock` and check again once they hold it, so
concurrent runs (on one host, or hosts sharing a file system whose server honours flock)
build once; space is reserved before a file is written; a manifest carries its own digest and
its array's size, so a damaged entry is rebuilt rather than trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import socket
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, load_audio, read_audio, to_pcm16
from speechrnn.console import counting
from speechrnn.data.files import file_lock, make_dir, reason, require_space
from speechrnn.data.index import CorpusIndex, speaker_of, word_of
from speechrnn.data.parallel import default_jobs
from speechrnn.errors import AudioError, DataError

FORMAT = "speechrnn-waves/1"
PARALLEL_MIN = 512  # smaller builds decode in this process
NAMED_FAILURES = 3  # failed clips named in the warning line
# fork (as DataLoader workers): spawn would re-import the caller's unguarded __main__
START_METHOD = "fork" if sys.platform == "linux" else "spawn"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedSplit:
    """One split of a corpus, decoded: waves[i] is the clip at paths[i]."""

    split: str
    waves: np.ndarray  # (N, CLIP_SAMPLES) int16, memory-mapped
    paths: tuple[str, ...]
    words: tuple[str, ...]
    speakers: tuple[str, ...]
    skipped: tuple[str, ...]
    file: Path


class NoiseRecordings(NamedTuple):
    names: tuple[str, ...]
    waves: list[np.ndarray]  # each (T_i,) float32 at 16 kHz


def corpus_cache_dir(cache_root: Path, root: Path) -> Path:
    """<cache_root>/waves/<corpus name>-<hash of its absolute path>."""
    root = root.resolve()
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name)[:40] or "corpus"
    return cache_root / "waves" / f"{slug}-{key}"


def load_split_cache(
    index: CorpusIndex,
    split: str,
    cache_root: Path,
    progress: bool = True,
    workers: int | None = None,
) -> CachedSplit:
    """The split's cache, (re)built first when missing or when the corpus files changed."""
    folder = corpus_cache_dir(cache_root, index.root)
    paths = index.splits[split]
    fingerprint = index.fingerprint(paths)
    found = _open_cached(folder, split, fingerprint)
    if found is None:
        with _building(folder, split):
            found = _open_cached(folder, split, fingerprint)  # another run may have built it
            if found is None:
                _build_split(index, split, folder, fingerprint, progress, workers)
                found = _open_cached(folder, split, fingerprint)
        assert found is not None
    manifest, waves = found
    return CachedSplit(
        split=split,
        waves=waves,
        paths=tuple(manifest["paths"]),
        words=tuple(manifest["words"]),
        speakers=tuple(manifest["speakers"]),
        skipped=tuple(manifest["skipped"]),
        file=folder / manifest["file"],
    )


def load_noise_cache(index: CorpusIndex, cache_root: Path) -> NoiseRecordings:
    """The corpus's `_background_noise_` recordings as float32, decoded once and cached."""
    folder = corpus_cache_dir(cache_root, index.root)
    fingerprint = index.fingerprint(index.noise)
    found = _open_cached(folder, "noise", fingerprint)
    if found is None:
        with _building(folder, "noise"):
            found = _open_cached(folder, "noise", fingerprint) or _build_noise(
                index, folder, fingerprint
            )
    manifest, flat = found
    ends = np.cumsum(manifest["lengths"], dtype=np.int64)
    waves = [flat[end - n : end] for n, end in zip(manifest["lengths"], ends, strict=True)]
    return NoiseRecordings(tuple(manifest["names"]), waves)


def _build_noise(index: CorpusIndex, folder: Path, fingerprint: str) -> tuple[dict[str, Any], Any]:
    names, waves, failed = [], [], []
    for rel in index.noise:
        try:
            waves.append(read_audio(index.root / rel))
            names.append(rel.rsplit("/", 1)[-1])
        except AudioError as exc:
            failed.append(f"{rel} ({_reason(index.root, rel, exc)})")
    _warn_skipped(index.root, "background noise", len(index.noise), failed)
    flat = np.concatenate(waves) if waves else np.zeros(0, np.float32)
    extra = {"names": names, "lengths": [int(w.shape[0]) for w in waves]}
    with _temp_npy(folder, "noise") as tmp:
        out = _allocate(tmp, flat.dtype, flat.shape, folder, "noise")
        out[:] = flat
        out.flush()
        del out
        _commit(folder, "noise", fingerprint, tmp, extra)
    found = _open_cached(folder, "noise", fingerprint)
    assert found is not None
    return found


def _build_split(
    index: CorpusIndex,
    split: str,
    folder: Path,
    fingerprint: str,
    progress: bool,
    workers: int | None,
) -> None:
    paths = index.splits[split]
    with _temp_npy(folder, split) as tmp:
        _allocate(tmp, np.dtype(np.int16), (len(paths), CLIP_SAMPLES), folder, split).flush()
        failed = []
        if paths:
            failed = _decode_all(index.root, paths, tmp, f"decoding {split}", progress, workers)
        bad_rows = {row for row, _ in failed}
        kept = [rel for row, rel in enumerate(paths) if row not in bad_rows]
        if bad_rows:
            _drop_rows(tmp, sorted(bad_rows))
        failures = [f"{paths[row]} ({reason})" for row, reason in failed]
        _warn_skipped(index.root, split, len(paths), failures)
        extra = {
            "split": split,
            "paths": kept,
            "words": [word_of(rel) for rel in kept],
            "speakers": [speaker_of(rel) for rel in kept],
            "skipped": [paths[row] for row, _ in failed],
        }
        _commit(folder, split, fingerprint, tmp, extra)


def _decode_all(
    root: Path,
    paths: Sequence[str],
    npy: Path,
    title: str,
    progress: bool,
    workers: int | None,
) -> list[tuple[int, str]]:
    """Decode every clip into the rows of `npy`, in chunks over processes; (row, reason) fails."""
    workers = workers or default_jobs()
    size = max(64, min(2048, len(paths) // (workers * 8) + 1))
    chunks = [(start, list(paths[start : start + size])) for start in range(0, len(paths), size)]
    failed: list[tuple[int, str]] = []
    with counting(title, len(paths), progress) as advance:
        if workers == 1 or len(paths) < PARALLEL_MIN:
            for start, chunk in chunks:
                failed += _decode_chunk(str(root), str(npy), start, chunk)
                advance(len(chunk))
        else:
            context = multiprocessing.get_context(START_METHOD)
            pool = ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context)
            try:
                jobs = {
                    pool.submit(_decode_chunk, str(root), str(npy), start, chunk): len(chunk)
                    for start, chunk in chunks
                }
                for job in as_completed(jobs):
                    failed += job.result()
                    advance(jobs[job])
            except BrokenProcessPool:
                raise DataError(
                    f"{npy.parent}: a decoding worker died (killed, or out of memory); "
                    "nothing was cached, run again"
                ) from None
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: no new chunks start
    return sorted(failed)


def _decode_chunk(root: str, npy: str, start: int, paths: list[str]) -> list[tuple[int, str]]:
    out = np.load(npy, mmap_mode="r+")  # (N, CLIP_SAMPLES) int16
    failed = []
    for offset, rel in enumerate(paths):
        try:
            out[start + offset] = to_pcm16(load_audio(Path(root) / rel))
        except AudioError as exc:
            failed.append((start + offset, _reason(Path(root), rel, exc)))
    out.flush()
    return failed


def _drop_rows(npy: Path, rows: list[int]) -> None:
    """Rewrite `npy` without `rows` (clips that failed to decode)."""
    src = np.load(npy, mmap_mode="r")  # (N, T)
    keep = np.setdiff1d(np.arange(src.shape[0]), rows)
    compact = npy.with_name(npy.stem + ".compact.npy")
    dst = _allocate(compact, np.dtype(np.int16), (keep.size, src.shape[1]), npy.parent, "cache")
    for start in range(0, keep.size, 4096):
        dst[start : start + 4096] = src[keep[start : start + 4096]]
    dst.flush()
    del src, dst
    compact.replace(npy)


def _reason(root: Path, rel: str, exc: AudioError) -> str:
    return str(exc).removeprefix(f"{root / rel}: ")


def _warn_skipped(root: Path, what: str, total: int, failures: Sequence[str]) -> None:
    if not failures:
        return
    more = "; ..." if len(failures) > NAMED_FAILURES else ""
    named = "; ".join(failures[:NAMED_FAILURES]) + more
    log.warning(
        "%s: skipped %d of %d %s clips that could not be decoded: %s",
        root,
        len(failures),
        total,
        what,
        named,
    )


def _open_cached(folder: Path, name: str, fingerprint: str) -> tuple[dict[str, Any], Any] | None:
    """(manifest, memmap) of a complete cache entry matching `fingerprint`, else None.

    A manifest whose digest, array file size, dtype or shape disagree is damaged: warned
    about and ignored, so the entry is rebuilt.
    """
    path = folder / f"{name}.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if path.exists():
            log.warning("%s: unreadable cache manifest; rebuilding the %s cache", path, name)
        return None
    if not isinstance(manifest, dict) or manifest.get("fingerprint") != fingerprint:
        return None
    if manifest.get("format") != FORMAT or "digest" not in manifest:
        log.info("%s: made by another speechrnn version; rebuilding the %s cache", path, name)
        return None
    try:
        if manifest.pop("digest") != _digest(manifest):
            raise ValueError("digest")
        array = np.load(folder / manifest["file"], mmap_mode="r")
        rows = len(manifest["paths"]) if "paths" in manifest else sum(manifest["lengths"])
        shape = (rows, CLIP_SAMPLES) if "paths" in manifest else (rows,)
        dtype = np.int16 if "paths" in manifest else np.float32
        size = (folder / manifest["file"]).stat().st_size
        if array.shape != shape or array.dtype != dtype or size != manifest["bytes"]:
            raise ValueError("shape")
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s: damaged cache entry (manifest or array); rebuilding it", path)
        return None
    return manifest, array


def _digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _commit(folder: Path, name: str, fingerprint: str, tmp: Path, extra: dict[str, Any]) -> None:
    """Rename the finished array into place, then atomically write the manifest naming it."""
    final = folder / f"{name}-{fingerprint[:16]}.npy"
    json_tmp = folder / f"{name}.json.{_owner()}.tmp"
    try:
        tmp.replace(final)
        manifest = {"format": FORMAT, "fingerprint": fingerprint, "file": final.name, **extra}
        manifest["bytes"] = final.stat().st_size
        manifest["digest"] = _digest(manifest)
        json_tmp.write_text(json.dumps(manifest), encoding="utf-8")
        json_tmp.replace(folder / f"{name}.json")
    except OSError as exc:
        json_tmp.unlink(missing_ok=True)
        raise DataError(f"{folder}: cannot write the {name} cache ({reason(exc)})") from None
    for old in folder.glob(f"{name}-*.npy"):
        if old != final:
            old.unlink(missing_ok=True)


def _allocate(path: Path, dtype: np.dtype, shape: tuple[int, ...], folder: Path, name: str) -> Any:
    """A writable .npy memmap whose blocks are reserved on disk first, so that a full disk is
    a DataError now rather than a bus error when a page is written later."""
    needed = int(np.prod(shape)) * dtype.itemsize + 4096
    require_space(folder, needed, f"the {name} cache")
    try:
        out = np.lib.format.open_memmap(path, "w+", dtype, shape)
        with path.open("r+b") as handle:
            _reserve(handle.fileno(), os.fstat(handle.fileno()).st_size)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise DataError(
            f"{folder}: cannot write the {name} cache ({reason(exc)}); free some space or set "
            "data.cache_dir"
        ) from None
    return out


def _reserve(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (95, 22):  # EOPNOTSUPP / EINVAL: write zeros instead
            raise
        block = bytes(1 << 20)
        os.lseek(fd, 0, os.SEEK_SET)
        for start in range(0, size, len(block)):
            os.write(fd, block[: min(len(block), size - start)])


@contextlib.contextmanager
def _building(folder: Path, name: str) -> Iterator[None]:
    """Hold the build lock of one cache entry (flock: one host, or hosts sharing an NFS)."""
    make_dir(folder)
    with file_lock(folder / f".{name}.lock"):
        yield


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@contextlib.contextmanager
def _temp_npy(folder: Path, name: str) -> Iterator[Path]:
    """A private temp file for a build (the build lock is held); older ones are left by killed
    builds, since a live builder would hold the lock: swept."""
    for stale in folder.glob(f"{name}.building-*.npy"):
        stale.unlink(missing_ok=True)
    tmp = folder / f"{name}.building-{_owner()}.npy"
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
