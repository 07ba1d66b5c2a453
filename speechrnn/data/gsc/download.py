"""GSC archives: downloaded (resumable, retried, SHA-256 checked), extracted once, marked."""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from speechrnn.data.files import file_lock, make_dir, sha256_file
from speechrnn.data.gsc.archive import MARKER, extract, remove_partial
from speechrnn.data.gsc.sources import SOURCES
from speechrnn.data.gsc.transfer import Retry, download
from speechrnn.data.staging import read_marker
from speechrnn.errors import ConfigError, DataError
from speechrnn.version import __version__

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class Archive:
    """Where an archive lives (http(s)://, file:// or a local path) and its published SHA-256.

    `keys` are the config keys that set the two, named in error lines.
    """

    url: str
    sha256: str | None  # None: not verified (warned once per URL)
    keys: tuple[str, str] = field(default=("data.url", "data.sha256"), compare=False, repr=False)

    def __post_init__(self) -> None:
        url_key, sha_key = self.keys
        if not self.url:
            raise ConfigError(f"{url_key}: empty; give an http(s):// or file:// URL or a path")
        scheme = urllib.parse.urlsplit(self.url).scheme if "://" in self.url else "file"
        if scheme not in ("file", "http", "https"):
            raise ConfigError(
                f"{url_key}: unsupported scheme {scheme!r} in {self.url!r}; give an http(s):// or "
                "file:// URL or a path"
            )
        digest = (self.sha256 or "").strip().lower() or None
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(f"{sha_key}: expected 64 hex digits, got {self.sha256!r}")
        object.__setattr__(self, "sha256", digest)

    @property
    def local_path(self) -> Path | None:
        """The archive's path when the URL is file:// or a plain path; None for remote URLs."""
        if "://" not in self.url:
            return Path(self.url).expanduser()
        parts = urllib.parse.urlsplit(self.url)
        return Path(urllib.request.url2pathname(parts.path)) if parts.scheme == "file" else None

    @property
    def file_name(self) -> str:
        local = self.local_path
        if local is not None:
            return local.name
        name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(self.url).path)).name
        return name or "archive.tar.gz"


ARCHIVES: dict[str, Archive] = {name: Archive(*source) for name, source in SOURCES.items()}


def ensure_extracted(
    archive: Archive,
    dest: Path,
    downloads_dir: Path,
    progress: bool = True,
    *,
    retry: Retry | None = None,
) -> Path:
    """Return `dest` holding the extracted archive; download/verify/extract only if needed.

    A `dest` whose marker matches returns at once. A `dest` that exists without a marker (a
    user's own corpus) or with the marker of another archive is never touched: DataError.
    """
    dest = Path(dest).expanduser().absolute()
    if _extracted(dest, archive):
        return dest
    make_dir(dest.parent)
    with file_lock(dest.parent / f".{dest.name}.lock"):
        remove_partial(dest)
        if _extracted(dest, archive):
            return dest
        path, digest = fetch(archive, Path(downloads_dir).expanduser(), progress, retry)
        marker = {"url": archive.url, "sha256": digest, "archive": archive.file_name}
        extract(path, dest, {**marker, "speechrnn": __version__}, progress)
    return dest


def fetch(
    archive: Archive,
    downloads_dir: Path,
    progress: bool = True,
    retry: Retry | None = None,
) -> tuple[Path, str]:
    """The verified archive file and its SHA-256: a local one in place, a remote one downloaded.

    Downloads go to `downloads_dir/<name>.part` and are renamed to `<name>` only once the
    checksum matches; a mismatching download is moved to `<name>.bad`.
    """
    local = archive.local_path
    if local is not None:
        if not local.is_file():
            raise DataError(f"{archive.url}: no such archive file")
        return local, _verify(archive, local, progress, "the file was left as it is")
    final = downloads_dir / archive.file_name
    part = final.with_name(f"{final.name}.part")
    make_dir(downloads_dir)
    with file_lock(final.with_name(f"{final.name}.lock")):
        if final.is_file():
            keep = f"it was kept: fix {archive.keys[1]}, or delete it to download again"
            return final, _verify(archive, final, progress, keep)
        download(archive.url, part, progress, retry)
        bad = final.with_name(f"{final.name}.bad")
        digest = _verify(archive, part, progress, f"the download was moved to {bad}", bad)
        os.replace(part, final)
    return final, digest


def _verify(
    archive: Archive, path: Path, progress: bool, outcome: str, set_aside: Path | None = None
) -> str:
    """SHA-256 of `path`; DataError (expected vs got) on a mismatch, after moving it aside."""
    digest = sha256_file(path, progress)
    if archive.sha256 is None:
        if archive.url not in _warned:
            _warned.add(archive.url)
            log.warning(
                "%s: no sha256 given, archive not verified (its sha256 is %s; set it to pin it)",
                archive.url,
                digest,
            )
    elif digest != archive.sha256:
        if set_aside is not None:
            os.replace(path, set_aside)
        raise DataError(
            f"checksum mismatch for {archive.url} ({path.name}): expected sha256 "
            f"{archive.sha256}, got {digest}; {outcome}"
        )
    return digest


def _extracted(dest: Path, archive: Archive) -> bool:
    """True when `dest` holds this archive; False when absent or empty; DataError otherwise."""
    marker = read_marker(dest, MARKER)
    if marker is None:
        if dest.is_dir() and not any(dest.iterdir()):
            return False
        if dest.exists():
            raise DataError(
                f"{dest}: exists without a {MARKER} (not extracted by speechrnn); refusing to "
                f"extract {archive.file_name} over it: use it as a corpus as it is, or choose "
                "a new or empty directory"
            )
        return False
    if _same(marker, archive):
        return True
    raise DataError(
        f"{dest}: holds {marker.get('url', 'an unknown archive')} (sha256 "
        f"{marker.get('sha256', 'unknown')}), not the requested {archive.url} (sha256 "
        f"{archive.sha256 or 'not given'}); it was left as it is: remove it or choose another "
        "directory"
    )


def _same(marker: dict[str, Any], archive: Archive) -> bool:
    if archive.sha256 is not None:
        return marker.get("sha256") == archive.sha256
    return marker.get("url") == archive.url
