"""DataConfig: the `data:` section (corpus, task, cache, batching) and the cache directory."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from speechrnn.data.gsc.sources import source_sha256, source_url
from speechrnn.errors import ConfigError
from speechrnn.labels import COMMANDS, RESERVED_PREFIX

OFFICIAL_TEST_SET = "official"
UNKNOWN_DRAWS = ("clip", "word")  # data.unknown_draw: _unknown_ drawn over clips or words
FIT_SETS: dict[str, tuple[str, ...]] = {  # data.fit_on: the splits a model is trained on
    "train": ("train",),
    "train+validation": ("train", "validation"),  # a final fit, once the settings are chosen
}


@dataclass(frozen=True)
class DataConfig:
    """Where the corpus is, which task to build from it, and how batches are served.

    The defaults are GSC v0.02 and its standard 12-class task (conf/data/gsc_v2_12.yaml).
    """

    name: str = "gsc_v2_12"
    root: str | None = None
    url: str | None = source_url("v0.02")
    sha256: str | None = source_sha256("v0.02")
    cache_dir: str | None = None
    words: tuple[str, ...] | None = COMMANDS
    silence_share: float = 0.1
    unknown_share: float = 0.1
    unknown_draw: str = "clip"
    batch_size: int = 64
    resident: bool | str = "auto"
    synthetic: bool = False
    synthetic_speakers: int | None = None
    cache_workers: int | None = None
    test_set: str | None = None  # null: the corpus's test split; official; or a local dir
    test_url: str | None = source_url("test_v0.02")
    test_sha256: str | None = source_sha256("test_v0.02")
    fit_on: str = "train"  # train | train+validation (a final fit: validation clips trained on)
    negatives: str | None = None  # a negative-speech dir (speechrnn-synth --negatives): _unknown_
    negatives_share: float = 0.5  # of each epoch's _unknown_ draw, taken from the negatives

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("data.name cannot be empty")
        for name in ("silence_share", "unknown_share", "negatives_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1], got {share}")
        if self.unknown_draw not in UNKNOWN_DRAWS:
            raise ConfigError(
                f"data.unknown_draw must be one of {', '.join(UNKNOWN_DRAWS)}, "
                f"got {self.unknown_draw!r}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {self.batch_size}")
        if isinstance(self.resident, str) and self.resident != "auto":
            raise ConfigError(f"data.resident must be auto, true or false, got {self.resident!r}")
        for name in ("sha256", "test_sha256"):
            digest = getattr(self, name)
            if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ConfigError(f"data.{name} must be 64 hex digits or null, got {digest!r}")
        if self.test_set is not None and not self.test_set.strip():
            raise ConfigError(
                "data.test_set is empty; give official, a test-set directory, or null"
            )
        if self.test_set == OFFICIAL_TEST_SET and not self.test_url:
            raise ConfigError(
                "data.test_set=official needs data.test_url (the official test-set archive)"
            )
        if self.fit_on not in FIT_SETS:
            raise ConfigError(
                f"data.fit_on must be one of {', '.join(FIT_SETS)}, got {self.fit_on!r}"
            )
        for name in ("synthetic_speakers", "cache_workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be at least 1 or null, got {value}")
        if self.words is not None:
            if not self.words:
                raise ConfigError("data.words cannot be an empty list (null: every word)")
            if len(set(self.words)) != len(self.words):
                raise ConfigError(f"data.words has duplicates: {list(self.words)}")
            reserved = [w for w in self.words if w.startswith(RESERVED_PREFIX) or "/" in w]
            if reserved:
                raise ConfigError(f"data.words: {reserved[0]!r} is not a word folder name")

    def resident_on(self, device_type: str) -> bool:
        """Whether split waveforms should live on a device of this type (cuda, cpu, mps)."""
        if self.resident == "auto":
            return device_type == "cuda"
        return bool(self.resident)


def cache_root(data: DataConfig) -> Path:
    """data.cache_dir, else $SPEECHRNN_CACHE, else $XDG_CACHE_HOME/speechrnn, ~/.cache/speechrnn."""
    if data.cache_dir:
        return Path(data.cache_dir).expanduser().absolute()
    if os.environ.get("SPEECHRNN_CACHE"):
        return Path(os.environ["SPEECHRNN_CACHE"]).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "speechrnn").absolute()
