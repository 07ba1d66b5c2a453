"""Command-line audio arguments (files, directories, globs) to an ordered list of files, safely."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator
from pathlib import Path

from speechrnn.console import shown
from speechrnn.errors import AudioError

# Searched for inside directories; a file named explicitly is decoded whatever its extension.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64",
)  # fmt: skip
MAX_FILES = 100_000  # files one directory or glob argument may expand to


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
    """Audio files a glob matches (folders it matches searched); `**` without following links."""
    if "**" not in Path(pattern).parts:
        for match in glob.iglob(pattern):
            path = Path(match)
            yield from _audio_in(path) if path.is_dir() else ([path] if _is_audio(match) else [])
        return
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    rest = parts[fixed:]
    for root, dirs, files in os.walk(base):
        rel = Path(root).relative_to(base).parts
        for name in (*files, *dirs):
            if _component_match((*rel, name), rest):
                path = Path(root) / name
                if name in files and _is_audio(name):
                    yield path
                elif name in dirs and not path.is_symlink():
                    yield from _audio_in(path)


def _component_match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Glob semantics per path component; `**` matches zero or more components."""
    if not pattern:
        return not parts
    head, tail = pattern[0], pattern[1:]
    if head == "**":
        return any(_component_match(parts[i:], tail) for i in range(len(parts) + 1))
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _component_match(parts[1:], tail)
