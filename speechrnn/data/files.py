"""Local file helpers: SHA-256, atomic writes, free space, advisory locks."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from speechrnn.console import ByteBar
from speechrnn.errors import DataError

CHUNK_BYTES = 1 << 20


def sha256_file(path: Path, progress: bool = True) -> str:
    """SHA-256 of a file as lowercase hex, with a progress bar for big files."""
    digest = hashlib.sha256()
    try:
        size = path.stat().st_size
        label = f"verify {path.name.removesuffix('.part')}"
        with ByteBar(label, progress, size) as bar, path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
                bar.advance(len(chunk))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({reason(exc)})") from None
    return digest.hexdigest()


def reason(exc: BaseException | str) -> str:
    """An error as a short phrase: the OS error text, else its first line, else its type."""
    if isinstance(exc, str):
        return exc
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(handle)` into a temporary file beside `path`, fsync it, rename it to `path` and
    fsync the dir: `path` is the old file or the whole new one, never a part. A full or
    read-only disk is a DataError naming `path`, with nothing left behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({reason(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def make_dir(folder: Path) -> Path:
    """Create `folder` and its parents if missing; DataError naming it if that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the directory ({reason(exc)})") from None
    return folder


def require_space(folder: Path, needed: int, what: str) -> None:
    """Raise DataError when `folder`'s file system has less than `needed` bytes free for `what`."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(
            f"{folder}: not enough free space for {what} "
            f"(needs {needed / 1e9:.2f} GB, {free / 1e9:.2f} GB free)"
        )


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (POSIX), so concurrent runs take turns."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not serialized
        yield
        return
    try:
        handle = path.open("a")
    except OSError as exc:
        raise DataError(f"{path.parent}: not writable ({reason(exc)})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_is_free(path: Path) -> bool:
    """True when no process (on any host sharing the lock, see file_lock) holds `path`'s flock;
    False when one does, or when it cannot be told (no such file, no advisory locks)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: cannot tell, so assume it is held
        return False
    try:
        handle = path.open("rb")  # never created here: a missing lock tells nothing
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True
