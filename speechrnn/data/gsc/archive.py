"""Safe tar extraction: all members checked first, extracted into a temp dir, renamed into place."""

from __future__ import annotations

import glob
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from speechrnn.console import ByteBar
from speechrnn.data.files import reason, require_space
from speechrnn.data.staging import write_marker
from speechrnn.errors import DataError

MARKER = ".speechrnn-archive.json"
PARTIAL = ".extracting-"
MAX_MEMBERS = 500_000  # GSC v0.02 holds about 106,000; more is refused while listing
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def remove_partial(dest: Path) -> None:
    """Delete temp dirs that an interrupted extraction into `dest` left beside it."""
    for leftover in dest.parent.glob(f".{glob.escape(dest.name)}{PARTIAL}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def extract(
    archive_file: Path,
    dest: Path,
    marker: Mapping[str, Any],
    progress: bool = True,
    max_members: int = MAX_MEMBERS,
) -> int:
    """Extract a tar archive into `dest` (absent or empty), its marker written last.

    Refuses absolute paths, '..', links, devices, fifos and more than `max_members` members
    before writing anything; strips a single wrapping folder; returns the number of files.
    """
    members: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(archive_file, "r:*") as tar:
            for member in tar:
                members.append(member)
                if len(members) > max_members:
                    raise DataError(
                        f"{archive_file}: more than {max_members} members; refusing to extract "
                        "it (not a speech-commands archive?)"
                    )
    except _READ_ERRORS as exc:
        raise DataError(f"{archive_file}: not a readable tar archive ({_reason(exc)})") from None
    if not members:
        raise DataError(f"{archive_file}: the archive is empty")
    for member in members:
        _check(member, archive_file)
    files = [m for m in members if m.isfile()]
    size = sum(m.size for m in files)
    require_space(dest.parent, size, f"extracting {archive_file.name}")
    try:
        temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{PARTIAL}", dir=dest.parent))
    except OSError as exc:
        raise DataError(f"{dest.parent}: cannot extract here ({reason(exc)})") from None
    try:
        with (
            tarfile.open(archive_file, "r:*") as tar,
            ByteBar(f"extract {archive_file.name}", progress, size) as bar,
        ):
            tar.extractall(temp, members=_counted(members, bar), **_DATA_FILTER)
        wrapper = _wrapper(members)
        root = temp / wrapper if wrapper else temp
        record = {**marker, "files": len(files)}
        write_marker(root, record, MARKER)
        root.chmod(0o755)
        if dest.is_dir():
            dest.rmdir()
        root.rename(dest)
    except _READ_ERRORS as exc:
        raise DataError(
            f"cannot extract {archive_file} into {dest} ({_reason(exc)}); nothing was kept"
        ) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return len(files)


_DATA_FILTER: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _check(member: tarfile.TarInfo, archive_file: Path) -> None:
    """Raise DataError naming `member` unless it is a plain file or folder inside the target."""
    name = member.name
    if member.issym() or member.islnk():
        why = f"a link to {member.linkname!r}"
    elif not (member.isfile() or member.isdir()):
        why = "a device file, fifo or other special file"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        why = "an absolute path"
    elif "\\" in name:
        why = "a backslash in its name"
    elif ".." in PurePosixPath(name).parts:
        why = "a '..' component"
    else:
        return
    raise DataError(
        f"{archive_file}: unsafe member {name!r} ({why}); refusing to extract the archive"
    )


def _wrapper(members: list[tarfile.TarInfo]) -> str | None:
    """The one top-level folder that holds everything, if the archive wraps its tree in one."""
    tops = {PurePosixPath(m.name).parts[:1] for m in members} - {()}
    if len(tops) != 1:
        return None
    top = next(iter(tops))[0]
    loose = [m for m in members if PurePosixPath(m.name).parts == (top,) and not m.isdir()]
    return None if loose else top


def _counted(members: list[tarfile.TarInfo], bar: ByteBar) -> Iterator[tarfile.TarInfo]:
    for member in members:
        yield member
        bar.advance(member.size if member.isfile() else 0)


def _reason(exc: BaseException) -> str:
    text = reason(exc)
    if isinstance(exc, EOFError | zlib.error) or "unexpected end" in text:
        return f"truncated or corrupt: {text}"
    return text
