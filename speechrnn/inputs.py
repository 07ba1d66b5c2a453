"""Command-line audio arguments (files, directories, globs) to an ordered list of files."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from speechrnn.errors import AudioError

# Searched for inside directories; a file named explicitly is decoded whatever its extension.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64",
)  # fmt: skip


def expand_inputs(items: list[str]) -> list[Path | AudioError]:
    """Files as given, directories searched recursively for audio, globs expanded (sorted).

    Problems that concern an argument rather than a file (a directory without audio, a glob
    that matches nothing) come back as AudioError entries in place, so the order is kept.
    """
    out: list[Path | AudioError] = []
    seen: set[str] = set()
    for item in items:
        for entry in _expand(item):
            key = os.path.normpath(entry) if isinstance(entry, Path) else None
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            out.append(entry)
    return out


def _expand(item: str) -> list[Path | AudioError]:
    path = Path(item)
    if path.is_dir():
        return _audio_in(path)
    if glob.has_magic(item) and not path.exists() and not path.is_symlink():
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            return [AudioError(f"{item}: no files match this pattern")]
        return [e for m in matches for e in (_audio_in(Path(m)) if Path(m).is_dir() else [Path(m)])]
    return [path]


def _audio_in(folder: Path) -> list[Path | AudioError]:
    """Audio files under `folder`, recursively, in sorted order; symlinked dirs not followed."""
    found: list[Path | AudioError] = []
    problems: list[AudioError] = []

    def unreadable(exc: OSError) -> None:
        problems.append(AudioError(f"{exc.filename}: cannot list directory ({exc.strerror})"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs.sort()
        found += [Path(root) / f for f in sorted(files) if f.lower().endswith(AUDIO_EXTENSIONS)]
    if not found and not problems:
        problems.append(
            AudioError(f"{folder}: directory holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        )
    return found + problems
