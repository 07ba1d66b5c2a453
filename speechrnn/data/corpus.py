"""Find the corpus (given, downloaded or synthesised), index it and build its caches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from speechrnn.augment import NoiseBank
from speechrnn.data.cache import (
    CachedSplit,
    corpus_cache_dir,
    load_noise_cache,
    load_split_cache,
)
from speechrnn.data.files import file_lock, make_dir
from speechrnn.data.index import CorpusIndex, scan_corpus, task_labels
from speechrnn.data.settings import DataConfig, cache_root
from speechrnn.data.synth.negatives import negative_clips
from speechrnn.errors import DataError
from speechrnn.labels import SPLITS

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

PREPARE_LOCK = ".prepare.lock"  # in the corpus's cache dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corpus:
    """An indexed GSC-layout corpus and where its caches live."""

    index: CorpusIndex
    cache_root: Path
    progress: bool = True
    workers: int | None = None

    @property
    def root(self) -> Path:
        return self.index.root

    @property
    def cache_dir(self) -> Path:
        return corpus_cache_dir(self.cache_root, self.root)

    def labels(self, data: DataConfig) -> list[str]:
        """The task's labels for this corpus: [_silence_, _unknown_, *words] as configured."""
        return task_labels(data.words, self.index.words, data.silence_share, data.unknown_share)

    def split(self, name: str) -> CachedSplit:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return load_split_cache(self.index, name, self.cache_root, self.progress, self.workers)

    def noise(self) -> NoiseBank:
        """The background-noise bank (CPU); generated noise when the corpus has none."""
        names, waves = load_noise_cache(self.index, self.cache_root)
        if waves:
            return NoiseBank.from_waves(waves, names)
        log.warning("%s: no _background_noise_ recordings; using generated noise", self.root)
        return NoiseBank.generated()


def open_corpus(data: DataConfig, progress: bool = True) -> Corpus:
    """Resolve data.root (downloading or synthesising when needed) and index it."""
    root = resolve_root(data, progress)
    return Corpus(scan_corpus(root), cache_root(data), progress, data.cache_workers)


def prepare(data: DataConfig, progress: bool = True) -> Corpus:
    """open_corpus, then build every split's cache and the noise cache (and the negatives').
    Processes that share the cache dir (DDP ranks, nodes on one shared file system) take turns:
    one builds, the others wait on the lock and then find the caches complete."""
    corpus = open_corpus(data, progress)
    with file_lock(make_dir(corpus.cache_dir) / PREPARE_LOCK):
        for split in SPLITS:
            corpus.split(split)
        corpus.noise()
        open_negatives(data, corpus, progress)
    return corpus


def open_negatives(data: DataConfig, corpus: Corpus, progress: bool = True) -> CachedSplit | None:
    """The training part of data.negatives, decoded once into the cache; None when unset.
    Its words must not be task words of `corpus` (they would be taught as `_unknown_`)."""
    if data.negatives is None:
        return None
    root = Path(data.negatives).expanduser().absolute()
    negative_clips(root)  # DataError unless a finished negatives dir
    index = scan_corpus(root)
    shared = sorted(set(index.words) & set(corpus.labels(data)))
    if shared:
        raise DataError(f"data.negatives: {root} holds task words ({', '.join(shared[:5])})")
    return load_split_cache(index, "train", corpus.cache_root, progress, data.cache_workers)


def resolve_root(data: DataConfig, progress: bool = True) -> Path:
    """An existing data.root as-is; otherwise synthesise (synthetic) or download (url)."""
    if data.root:
        root = Path(data.root).expanduser().absolute()
        if root.exists():
            return root
        if data.synthetic:
            return _synthesize(root, data, progress)
        raise DataError(
            f"data.root: {root} does not exist (point it at a GSC-layout corpus, "
            "or set data.root=null to download)"
        )
    root = default_root(data)
    if data.synthetic:
        return root if root.is_dir() else _synthesize(root, data, progress)
    from speechrnn.data.gsc.download import Archive, ensure_extracted

    assert data.url is not None
    archive = Archive(url=data.url, sha256=data.sha256)
    return ensure_extracted(archive, root, cache_root(data) / "downloads", progress=progress)


def default_root(data: DataConfig) -> Path:
    """<cache dir>/synthetic, or <cache dir>/<archive name without its suffix>."""
    if data.synthetic:
        return cache_root(data) / "synthetic"
    if not data.url:
        raise DataError(
            "data.root and data.url are both null: set data.root=<GSC-layout corpus> "
            "or data.url=<archive URL>"
        )
    return extract_dir(data, data.url, data.name)


def extract_dir(data: DataConfig, url: str, fallback: str) -> Path:
    """<cache dir>/<the URL's archive name without its suffix>, or <cache dir>/<fallback>."""
    name = Path(urlparse(url).path).name
    for suffix in ARCHIVE_SUFFIXES:
        name = name.removesuffix(suffix)
    return cache_root(data) / (name or fallback)


def _synthesize(root: Path, data: DataConfig, progress: bool) -> Path:
    from speechrnn.data.synth.writer import synthesize

    options: dict[str, Any] = {"progress": progress}
    if data.synthetic_speakers is not None:
        options["speakers"] = data.synthetic_speakers
    return Path(synthesize(root, **options))
