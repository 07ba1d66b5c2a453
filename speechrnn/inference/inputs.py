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
    """Files as given; directories searched recursively and globs expanded, for audio files.

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
        matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
        found = [e for m in matches for e in (_audio_in(m) if m.is_dir() else [m]) if _is_audio(e)]
        return found or [AudioError(f"{item}: no audio files match this pattern")]
    return [path]


def _is_audio(entry: Path | AudioError) -> bool:
    return isinstance(entry, AudioError) or entry.name.lower().endswith(AUDIO_EXTENSIONS)


def _audio_in(folder: Path) -> list[Path | AudioError]:
    """Audio files under `folder`, recursively, sorted by path; symlinked dirs not followed."""
    found: list[Path] = []
    problems: list[Path | AudioError] = []

    def unreadable(exc: OSError) -> None:
        problems.append(AudioError(f"{exc.filename}: cannot list directory ({exc.strerror})"))

    for root, _, files in os.walk(folder, onerror=unreadable):
        found += [Path(root) / f for f in files if _is_audio(Path(f))]
    if not found and not problems:
        problems.append(
            AudioError(
                f"{folder}: no audio files in this directory "
                "(searched recursively for .wav, .flac, .ogg, .mp3 and other soundfile formats)"
            )
        )
    return [*sorted(found), *problems]
