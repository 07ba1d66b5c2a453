"""Resumable HTTP(S) download (urllib): Range requests, retries with backoff, a progress bar."""

from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from speechrnn import __version__
from speechrnn.console import ByteBar
from speechrnn.data.files import CHUNK_BYTES, make_dir, reason, require_space
from speechrnn.errors import DataError

OFFLINE_HINT = (
    "set data.root to an existing copy of the corpus, or use data=synthetic to work offline"
)
MAX_DELAY_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_RETRY_CODES = (408, 425, 429)


class TransientError(Exception):
    """A failure worth retrying (connection reset, timeout, HTTP 5xx); its text is the reason."""


@dataclass(frozen=True)
class Retry:
    """How hard to try: transient failures in a row, first backoff delay, socket timeout."""

    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    sleep: Callable[[float], object] = time.sleep


def download(url: str, part: Path, progress: bool = True, retry: Retry | None = None) -> None:
    """Fetch `url` into `part`, resuming from the bytes already there; raise DataError on failure.

    Transient errors are retried up to `retry.retries` times in a row, after `backoff_s`,
    2 x `backoff_s`, ... (at most a minute); an attempt that got bytes resets the count.
    """
    retry = retry or Retry()
    failures = 0
    with ByteBar(f"download {part.name.removesuffix('.part')}", progress) as bar:
        while True:
            before = _size(part)
            try:
                if _attempt(url, part, retry.timeout_s, bar):
                    return
                continue
            except TransientError as exc:
                if _size(part) > before:
                    failures = 0
                failures += 1
                if failures > retry.retries:
                    size = _size(part)
                    kept = f"; {size} bytes kept in {part} to resume" if size else ""
                    raise DataError(
                        f"cannot download {url} ({exc}; gave up after {_tries(failures)}{kept}); "
                        f"{OFFLINE_HINT}"
                    ) from None
            retry.sleep(min(retry.backoff_s * 2 ** (failures - 1), MAX_DELAY_S))


def _attempt(url: str, part: Path, timeout_s: float, bar: ByteBar) -> bool:
    """One request; True when `part` is complete, False to start over from the first byte."""
    offset = _size(part)
    request = urllib.request.Request(url, headers={"User-Agent": f"speechrnn/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return _range_done(exc.headers.get("Content-Range"), part, offset)
        raise _http_failure(url, exc) from None
    except (ValueError, http.client.InvalidURL) as exc:
        raise DataError(f"{url}: not a valid URL ({reason(exc)}); check data.url") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _connect_failure(url, exc) from None
    with response:
        start, total = _body_range(response.status, response.headers, offset)
        if start is None:
            part.unlink(missing_ok=True)
            return False
        if total is not None:
            require_space(part.parent, total - start, f"downloading {url}")
        bar.reset(total, start)
        with _open(part, "ab" if start else "wb") as out:
            _copy(response, out, part, bar)
    if total is not None and _size(part) != total:
        raise TransientError(f"connection closed early, {_size(part)} of {total} bytes")
    return True


def _body_range(
    status: int, headers: http.client.HTTPMessage, offset: int
) -> tuple[int | None, int | None]:
    """(first byte of the body, full size or None); first byte None when the answer is unusable."""
    length = headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if status != 206:
        return 0, size  # a server that ignores Range sends the whole file: start over
    match = _CONTENT_RANGE.fullmatch((headers.get("Content-Range") or "").strip())
    if match is None or int(match.group(1)) != offset:
        return None, None
    total = match.group(3)
    return offset, int(total) if total != "*" else (offset + size if size is not None else None)


def _range_done(content_range: str | None, part: Path, offset: int) -> bool:
    """HTTP 416 on a resume: complete if the server's size is ours (or unknown), else restart."""
    match = re.fullmatch(r"bytes\s+\*/(\d+)", (content_range or "").strip())
    if match is None or int(match.group(1)) == offset:
        return True  # the checksum decides
    part.unlink(missing_ok=True)
    return False


def _copy(response: http.client.HTTPResponse, out: BinaryIO, part: Path, bar: ByteBar) -> None:
    while True:
        try:
            chunk = response.read1(CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            raise TransientError(reason(exc)) from None
        if not chunk:
            return
        try:
            out.write(chunk)
        except OSError as exc:
            raise DataError(f"{part}: cannot write ({reason(exc)})") from None
        bar.advance(len(chunk))


def _open(part: Path, mode: str) -> BinaryIO:
    make_dir(part.parent)
    try:
        return part.open(mode)
    except OSError as exc:
        raise DataError(f"{part}: cannot write ({reason(exc)})") from None


def _http_failure(url: str, exc: urllib.error.HTTPError) -> Exception:
    status = f"HTTP {exc.code} {exc.reason}".strip()
    if exc.code >= 500 or exc.code in _RETRY_CODES:
        return TransientError(status)
    return DataError(f"cannot download {url} ({status}); check data.url")


def _connect_failure(url: str, exc: BaseException) -> Exception:
    """Resets and timeouts are retried; refused, unresolvable or unroutable hosts fail at once."""
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    transient = TimeoutError | ConnectionResetError | ConnectionAbortedError
    if isinstance(cause, transient | http.client.HTTPException):
        return TransientError(reason(cause))
    return DataError(f"cannot reach {url} ({reason(cause)}); {OFFLINE_HINT}")


def _tries(count: int) -> str:
    return f"{count} try" if count == 1 else f"{count} tries"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
