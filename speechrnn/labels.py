"""Label and GSC-layout names: reserved classes, the noise folder, split lists, the word sets."""

from __future__ import annotations

from collections.abc import Sequence

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
NOISE_DIR = "_background_noise_"
RESERVED_PREFIX = "_"  # _silence_, _unknown_, _background_noise_
SPLITS = ("train", "validation", "test")
LIST_FILES = {"validation": "validation_list.txt", "test": "testing_list.txt"}


COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
GSC_V2_WORDS = (
    *COMMANDS,
    *["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    *["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow"],
    *["backward", "forward", "follow", "learn", "visual"],
)


def is_keyword(label: str) -> bool:
    """A label a detector reports: every one but `_silence_` and `_unknown_`."""
    return label not in (SILENCE, UNKNOWN)


def keywords(labels: Sequence[str]) -> list[str]:
    """The labels a detector reports, in their order."""
    return [label for label in labels if is_keyword(label)]
