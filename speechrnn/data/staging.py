"""All-or-nothing output dirs: build beside the target, write a completion marker last, rename.

A build holds an flock on its partial dir's `.lock` file while it runs; a partial dir whose lock
nobody holds was left by a killed build (on any host sharing the file system) and is swept.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from speechrnn.data.files import file_lock, lock_is_free
from speechrnn.errors import DataError

MARKER = ".speechrnn-complete.json"  # its presence means the dir was finished


def read_marker(directory: Path, name: str = MARKER) -> dict[str, Any] | None:
    """The completion marker `name` of a finished dir; None when absent or unreadable."""
    try:
        marker = json.loads((Path(directory) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def write_marker(directory: Path, content: Mapping[str, Any], name: str = MARKER) -> None:
    """Write the marker (call last: it declares `directory` complete)."""
    text = json.dumps(dict(content), indent=1, sort_keys=True) + "\n"
    (directory / name).write_text(text, encoding="utf-8")


def is_complete(target: Path, key: Mapping[str, Any]) -> bool:
    """True when `target` was finished with these `key` settings, False when absent or empty;
    DataError when it holds anything else (another build's output, or unrelated files)."""
    if not target.exists():
        return False
    if not target.is_dir():
        raise DataError(f"{target}: exists and is not a directory")
    marker = read_marker(target)
    if marker is not None:
        differ = [name for name in key if marker.get(name) != key[name]]
        if differ:
            detail = ", ".join(
                f"{n} {_show(marker.get(n))} (asked {_show(key[n])})" for n in differ
            )
            raise DataError(
                f"{target}: was made with other settings: {detail}; use another dir or delete it"
            )
        return True
    if any(target.iterdir()):
        raise DataError(f"{target}: not empty and not a finished build; use a new or empty dir")
    return False


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """Yield a fresh build dir beside `target`; renamed onto it on success, removed on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep(target)
    partial = target.parent / f".{target.name}.partial-{socket.gethostname()}-{os.getpid()}"
    lock = _lock_of(partial)
    try:
        with file_lock(lock):
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            try:
                yield partial
                partial.rename(target)
            except OSError as exc:
                raise DataError(f"{target}: cannot write ({exc.strerror or exc})") from None
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)


def _sweep(target: Path) -> None:
    """Remove the partial dirs of `target` whose builds are gone (their locks are free). A build
    locks before it makes its dir, so a dir whose lock is free is never a live build's."""
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        if stale.is_dir() and lock_is_free(_lock_of(stale)):
            shutil.rmtree(stale, ignore_errors=True)
            _lock_of(stale).unlink(missing_ok=True)


def _lock_of(partial: Path) -> Path:
    return partial.with_name(partial.name + ".lock")


def _show(value: Any) -> str:
    return f"[{len(value)} items]" if isinstance(value, list) else repr(value)
