"""Command-line audio arguments (files, directories, globs) to an ordered list of files, safely."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from speechrnn.console import shown
from speechrnn.errors import AudioError
from speechrnn.settings import bounded, check_ranges

# Searched for inside directories; a file named explicitly is decoded whatever its extension.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64",
)  # fmt: skip
MAX_FILES = 100_000  # files one directory or glob argument may expand to (by default)


@dataclass(frozen=True)
class InputLimits:
    """How many files one directory or glob argument may expand to (`--max-files`)."""

    max_files: int = bounded(MAX_FILES, 1, 10_000_000)

    def __post_init__(self) -> None:
        check_ranges(self)


def expand_inputs(items: list[str], max_files: int = MAX_FILES) -> list[Path | AudioError]:
    """Files as given; directories searched recursively and globs expanded, for audio files.

    Every real file is listed once (by its resolved path), symlinked folders are never
    descended into (so links that loop end), and an argument that expands to more than
    `max_files` files becomes an error. Problems that concern an argument rather than a file
    come back as AudioError entries in place, so the order is kept.
    """
    out: list[Path | AudioError] = []
    seen: set[str] = set()
    for item in items:
        for entry in _expand(item, max_files):
            key = os.path.realpath(entry) if isinstance(entry, Path) else None
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            out.append(entry)
    return out


def _expand(item: str, max_files: int) -> list[Path | AudioError]:
    path = Path(item)
    if path.is_dir():
        found = _capped(_audio_in(path), item, max_files)
        if not found:
            return [AudioError(f"{shown(item)}: no audio files in this directory {_SEARCHED}")]
        return found
    if glob.has_magic(item) and not path.exists() and not path.is_symlink():
        found = _capped(_matches(item), item, max_files)
        return found or [AudioError(f"{shown(item)}: no audio files match this pattern")]
    return [path]


_SEARCHED = "(searched recursively for .wav, .flac, .ogg, .mp3 and other soundfile formats)"


def _capped(entries: Iterator[Path | AudioError], item: str, cap: int) -> list[Path | AudioError]:
    """The entries, unique by real path and sorted; one error instead past `cap` files."""
    files: dict[str, Path] = {}
    problems: list[Path | AudioError] = []
    for entry in entries:
        if isinstance(entry, AudioError):
            problems.append(entry)
            continue
        files.setdefault(os.path.realpath(entry), entry)
        if len(files) > cap:
            return [
                AudioError(
                    f"{shown(item)}: expands to more than {cap} files; name fewer "
                    "(or raise --max-files)"
                )
            ]
    return [*sorted(files.values()), *problems]


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _audio_in(folder: Path) -> Iterator[Path | AudioError]:
    """Audio files under `folder`, recursively; symlinked folders are not descended into."""
    problems: list[AudioError] = []

    def unreadable(exc: OSError) -> None:
        problems.append(AudioError(f"{exc.filename}: cannot list directory ({exc.strerror})"))

    for root, _, files in os.walk(folder, onerror=unreadable):
        yield from (Path(root) / f for f in files if _is_audio(f))
    yield from problems


def _matches(pattern: str) -> Iterator[Path | AudioError]:
    """Audio files a glob matches (folders it matches searched like folder arguments).

    One walk from the pattern's fixed folder, carrying the positions of the pattern each folder
    can be at: a real folder is listed at most once per position, so the time is linear in the
    folders times the pattern's components, however many `**` or links loop. Symlinked folders
    are entered only where a component other than `**` names them.
    """
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    matcher = _Glob(parts[fixed:])
    stack = [(Path(*parts[:fixed]) if fixed else Path("."), matcher.start)]
    listed: dict[tuple[int, int], set[int]] = {}  # (device, inode) -> positions listed there
    while stack:
        folder, states = stack.pop()
        try:
            stat = os.stat(folder)
            identity = (stat.st_dev, stat.st_ino)
            new = states - listed.setdefault(identity, set())
            if not new:
                continue
            listed[identity] |= new
            entries = list(os.scandir(folder))
        except OSError:  # gone or unreadable: glob skips it too
            continue
        matched: list[Path] = []  # searched after this folder's own files
        for entry in entries:
            named, starred = matcher.step(new, entry.name)
            after = named if entry.is_symlink() else named | starred
            path = folder / entry.name
            if after and entry.is_dir() and matcher.end in after:
                matched.append(path)
            elif after and entry.is_dir():
                stack.append((path, after))
            elif matcher.end in after and _is_audio(entry.name):
                yield path
        for path in matched:
            yield from _audio_in(path)


class _Glob:
    """A glob over path components, matched as a set of positions in it: each component moves
    every position at most one step (no backtracking); `**` matches zero or more components."""

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = tuple(p for i, p in enumerate(parts) if p != "**" or parts[i - 1 : i] != (p,))
        self.end = len(self.parts)
        self.start = self._closure({0})

    def step(self, states: frozenset[int], name: str) -> tuple[frozenset[int], frozenset[int]]:
        """(positions after a component that names `name`, positions where `**` takes it)."""
        live = [i for i in states if i < self.end]
        named = {i + 1 for i in live if self.parts[i] != "**" and _fits(name, self.parts[i])}
        return self._closure(named), self._closure({i for i in live if self.parts[i] == "**"})

    def _closure(self, states: set[int]) -> frozenset[int]:
        """`states` and the positions past each `**` that starts there (it matches nothing too)."""
        out = set(states)
        for i in states:
            while i < self.end and self.parts[i] == "**":
                i += 1
                out.add(i)
        return frozenset(out)


def _fits(name: str, part: str) -> bool:
    """One component against one glob part; hidden names only match parts that start with '.'."""
    return (part.startswith(".") or not name.startswith(".")) and fnmatch.fnmatchcase(name, part)
