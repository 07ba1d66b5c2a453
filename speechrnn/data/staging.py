"""All-or-nothing output dirs: build beside the target, write a completion marker last, rename."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from speechrnn.data.files import abandoned
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
    partial = _partial_dir(target)
    try:
        yield partial
        partial.rename(target)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"{target}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _partial_dir(target: Path) -> Path:
    """`.<name>.partial-<pid>` beside `target`; ones left by killed processes are removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        if abandoned(stale):
            shutil.rmtree(stale, ignore_errors=True)
    path = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def _show(value: Any) -> str:
    return f"[{len(value)} items]" if isinstance(value, list) else repr(value)
