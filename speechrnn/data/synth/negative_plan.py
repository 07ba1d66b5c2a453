"""What a negatives dir holds: its settings, its word and phrase folders and their voices."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from speechrnn.data.synth.espeak import Inventory, Voice
from speechrnn.data.synth.lexicon import Entry, Lexicon, LexiconSettings
from speechrnn.data.synth.writer import MAX_SPEAKERS, random_voice
from speechrnn.errors import ConfigError, DataError

KIND = "speechrnn-negatives"
FORMAT = 1
PARTS = ("train", "heldout")  # held-out clips are listed in testing_list.txt
KINDS = ("word", "near_miss", "phrase")


@dataclass(frozen=True)
class NegativeSettings:
    """What a negatives dir holds; the same settings always give byte-identical files."""

    lexicon: LexiconSettings = field(default_factory=LexiconSettings)
    phrases: int = 3_000  # 2-3 word phrases, over both parts
    phrase_rank: int = 3_000  # phrase words are among the words ranked below this
    phrase_syllables: int = 4  # so that a phrase fits 1 s at natural rates
    clips_per_word: int = 3  # training clips of each word, by distinct voices
    clips_per_near_miss: int = 8
    clips_per_phrase: int = 1
    heldout_clips: int = 1  # of each held-out word, near-miss and phrase
    voices: int = 400  # training speakers
    heldout_voices: int = 100  # held-out speakers, all of held-out variants
    heldout_percent: float = 20.0  # of the words and of the espeak-ng voice variants
    level_db: tuple[float, float] = (-22.0, -6.0)  # loudest 10 ms of speech, dB full scale
    floor_db: tuple[float, float] = (25.0, 75.0)  # that level over the noise floor's, dB
    seed: int = 0

    def __post_init__(self) -> None:
        counts = ("clips_per_word", "clips_per_near_miss", "clips_per_phrase", "heldout_clips")
        for name in (*counts, "phrase_rank", "phrase_syllables"):
            if getattr(self, name) < 1:
                raise ConfigError(f"negatives.{name} must be at least 1, got {getattr(self, name)}")
        if self.phrases < 0 or self.seed < 0:
            raise ConfigError("negatives.phrases and negatives.seed must be >= 0")
        for name, need in (("voices", counts[:3]), ("heldout_voices", counts[3:])):
            most, value = max(getattr(self, n) for n in need), getattr(self, name)
            if not most <= value <= MAX_SPEAKERS:
                raise ConfigError(
                    f"negatives.{name}: {value} is out of range {most}..{MAX_SPEAKERS}"
                )
        if not 0.0 < self.heldout_percent < 100.0:
            raise ConfigError(
                f"negatives.heldout_percent must be in (0, 100), got {self.heldout_percent}"
            )
        low, high = self.level_db
        if not low <= high <= 0.0:
            raise ConfigError(
                f"negatives.level_db must be [low, high] <= 0 dB, got {self.level_db}"
            )
        low, high = self.floor_db
        if not 0.0 <= low <= high:
            raise ConfigError(
                f"negatives.floor_db must be [low, high] >= 0 dB, got {self.floor_db}"
            )

    def key(self) -> dict[str, Any]:
        """The settings as stored in (and compared with) the completion marker."""
        return {"kind": KIND, "format": FORMAT, **json.loads(json.dumps(asdict(self)))}


@dataclass(frozen=True)
class Item:
    """One word folder: what espeak-ng says in it, its kind, part and nearest command."""

    name: str
    text: str
    kind: str  # word, near_miss or phrase
    part: str  # train or heldout
    command: str = ""  # words only: the nearest command ...
    distance: int = 0  # ... and its phoneme distance


def is_heldout(key: str, percent: float) -> bool:
    """The stable split rule: `key` (a word or a variant) is held out by its sha1."""
    digest = hashlib.sha1(f"speechrnn-negatives:{key}".encode()).hexdigest()
    return int(digest, 16) % 10_000 < percent * 100


def plan_items(settings: NegativeSettings, lexicon: Lexicon) -> list[Item]:
    """Every word, near-miss and phrase folder, each in the part its words belong to."""
    items = [
        Item(
            e.word,
            e.word,
            "near_miss" if e.near_miss else "word",
            _part(e.word, settings),
            e.command,
            e.distance,
        )
        for e in lexicon.entries
    ]
    heldout = round(settings.phrases * settings.heldout_percent / 100)
    for part, count in (("train", settings.phrases - heldout), ("heldout", heldout)):
        pool = [
            e
            for e in lexicon.entries
            if not e.near_miss and e.rank < settings.phrase_rank and _part(e.word, settings) == part
        ]
        rng = np.random.default_rng([settings.seed, 3, PARTS.index(part)])
        for words in compose_phrases(pool, count, rng, settings.phrase_syllables):
            items.append(Item("_".join(words), " ".join(words), "phrase", part))
    return items


def compose_phrases(
    pool: Sequence[Entry], count: int, rng: np.random.Generator, max_syllables: int
) -> list[tuple[str, ...]]:
    """`count` distinct random runs of 2-3 different pool words, at most `max_syllables` long."""
    found: dict[tuple[str, ...], None] = {}
    for _ in range(50 * count):
        if len(found) == count:
            break
        picks = rng.choice(len(pool), int(rng.integers(2, 4)), replace=True)
        if len(set(picks)) == picks.size and sum(pool[i].syllables for i in picks) <= max_syllables:
            found.setdefault(tuple(pool[i].word for i in picks))
    if len(found) < count:
        raise DataError(
            f"only {len(found)} of {count} phrases of at most {max_syllables} syllables could be "
            f"made from {len(pool)} words; ask for fewer phrases or a larger phrase_rank"
        )
    return list(found)


def voice_pools(settings: NegativeSettings, inv: Inventory) -> dict[str, list[Voice]]:
    """Distinct speakers of each part; the parts share no espeak-ng voice variant."""
    pools = {}
    for part, count in (("train", settings.voices), ("heldout", settings.heldout_voices)):
        variants = tuple(v for v in inv.variants if _variant_part(v, settings) == part)
        if not variants:
            raise DataError(f"espeak-ng offers no voice variant for the {part} part")
        rng = np.random.default_rng([settings.seed, 10, PARTS.index(part)])
        chosen: dict[str, Voice] = {}
        while len(chosen) < count:
            voice = random_voice(rng, replace(inv, variants=variants))
            chosen.setdefault(voice.speaker_id, voice)
        pools[part] = list(chosen.values())
    return pools


def assign_voices(
    items: Sequence[Item], pools: dict[str, list[Voice]], settings: NegativeSettings
) -> list[tuple[Item, Voice]]:
    """Each item's clips: distinct voices of its part, drawn by the seed and the item's name."""
    per_kind = {
        "word": settings.clips_per_word,
        "near_miss": settings.clips_per_near_miss,
        "phrase": settings.clips_per_phrase,
    }
    clips = []
    for item in items:
        pool = pools[item.part]
        count = per_kind[item.kind] if item.part == "train" else settings.heldout_clips
        rng = np.random.default_rng([settings.seed, 20, zlib.crc32(item.name.encode())])
        clips += [(item, pool[int(i)]) for i in rng.choice(len(pool), count, replace=False)]
    return clips


def _part(word: str, settings: NegativeSettings) -> str:
    return PARTS[is_heldout(f"word:{word}", settings.heldout_percent)]


def _variant_part(variant: str, settings: NegativeSettings) -> str:
    return PARTS[is_heldout(f"variant:{variant}", settings.heldout_percent)]
