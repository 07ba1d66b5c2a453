"""Resumable HTTP(S) download (urllib): Range + If-Range, bounded retries and a deadline, a bar."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from speechrnn.console import ByteBar
from speechrnn.data.files import CHUNK_BYTES, make_dir, reason, require_space
from speechrnn.errors import DataError
from speechrnn.version import __version__

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
    """How hard to try: failed tries in a row, first backoff delay, socket timeout, and an
    overall deadline for the whole download (seconds from its first request)."""

    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    deadline_s: float = 6 * 3600.0
    sleep: Callable[[float], object] = time.sleep
    clock: Callable[[], float] = time.monotonic


def download(url: str, part: Path, progress: bool = True, retry: Retry | None = None) -> None:
    """Fetch `url` into `part`, resuming from the bytes already there; raise DataError on failure.

    Every response that does not move the download forward (an error, a wrong range, an
    empty or short body) is a failed try; up to `retry.retries` in a row are retried after
    `backoff_s`, 2 x `backoff_s`, ... (at most a minute), within `retry.deadline_s` overall.
    A try that added bytes resets the count. The server's validator (ETag or Last-Modified)
    is kept beside `part` and sent as If-Range, so a changed file restarts instead of mixing.
    """
    retry = retry or Retry()
    failures = 0
    end = retry.clock() + retry.deadline_s
    with ByteBar(f"download {part.name.removesuffix('.part')}", progress) as bar:
        while True:
            before = _size(part)
            try:
                _attempt(url, part, retry, end, bar)
                _validator_file(part).unlink(missing_ok=True)
                return
            except TransientError as exc:
                if _size(part) > before:
                    failures = 0
                failures += 1
                delay = min(retry.backoff_s * 2 ** (failures - 1), MAX_DELAY_S)
                late = retry.clock() + delay > end
                if failures > retry.retries or late:
                    size = _size(part)
                    kept = f"; {size} bytes kept in {part} to resume" if size else ""
                    limit = f"the {retry.deadline_s:g} s deadline" if late else _tries(failures)
                    raise DataError(
                        f"cannot download {url} ({exc}; gave up after {limit}{kept}); "
                        f"{OFFLINE_HINT}"
                    ) from None
            retry.sleep(delay)


def _attempt(url: str, part: Path, retry: Retry, end: float, bar: ByteBar) -> None:
    """One request that completes `part`; TransientError when it did not get there."""
    offset = _size(part)
    request = urllib.request.Request(url, headers={"User-Agent": f"speechrnn/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        validator = _read_validator(part)
        if validator:
            request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=retry.timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            _range_done(exc.headers.get("Content-Range"), part, offset)
            return
        raise _http_failure(url, exc) from None
    except (ValueError, http.client.InvalidURL) as exc:
        raise DataError(f"{url}: not a valid URL ({reason(exc)}); check data.url") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _connect_failure(url, exc) from None
    with response:
        start, total = _body_range(response.status, response.headers, offset)
        if total is not None:
            require_space(part.parent, total - start, f"downloading {url}")
        bar.reset(total, start)
        with _open(part, "ab" if start else "wb") as out:
            if not start:
                _write_validator(part, response.headers)
            _copy(response, out, part, bar, lambda: retry.clock() > end)
    size = _size(part)
    if total is not None and size != total:
        raise TransientError(f"connection closed early, {size} of {total} bytes")
    if size == start:
        raise TransientError(f"HTTP {response.status} with an empty body")


def _body_range(
    status: int, headers: http.client.HTTPMessage, offset: int
) -> tuple[int, int | None]:
    """(first byte of the body, full size or None); TransientError when the range is not ours."""
    length = headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if status != 206:
        return 0, size  # ignored Range or a changed file (If-Range): the whole file, start over
    content_range = (headers.get("Content-Range") or "").strip()
    match = _CONTENT_RANGE.fullmatch(content_range)
    if match is None or int(match.group(1)) != offset:
        raise TransientError(
            f"HTTP 206 with Content-Range {content_range[:60]!r} for a request from byte {offset}"
        )
    total = match.group(3)
    return offset, int(total) if total != "*" else (offset + size if size is not None else None)


def _validator_file(part: Path) -> Path:
    return part.with_name(f"{part.name}.validator")


def _read_validator(part: Path) -> str | None:
    """The ETag (strong only) or Last-Modified the bytes in `part` came with, if known."""
    try:
        value = json.loads(_validator_file(part).read_text(encoding="utf-8")).get("if_range")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value.isprintable() and len(value) < 256 else None


def _write_validator(part: Path, headers: http.client.HTTPMessage) -> None:
    etag = headers.get("ETag") or ""
    value = etag if etag.startswith('"') else headers.get("Last-Modified")
    target = _validator_file(part)
    if value and value.isprintable() and len(value) < 256:
        target.write_text(json.dumps({"if_range": value}), encoding="utf-8")
    else:
        target.unlink(missing_ok=True)


def _range_done(content_range: str | None, part: Path, offset: int) -> None:
    """HTTP 416 on a resume: complete if the server's size is ours (or unknown), else a retry."""
    match = re.fullmatch(r"bytes\s+\*/(\d+)", (content_range or "").strip())
    if match is None or int(match.group(1)) == offset:
        return  # the checksum decides
    if int(match.group(1)) > offset:
        raise TransientError(f"HTTP 416 for byte {offset} of a {match.group(1)}-byte file")
    part.unlink(missing_ok=True)  # ours is longer than the server's file: not the same file
    _validator_file(part).unlink(missing_ok=True)
    raise TransientError(f"HTTP 416: the server's file is {match.group(1)} bytes, ours was longer")


def _copy(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    part: Path,
    bar: ByteBar,
    expired: Callable[[], bool],
) -> None:
    while not expired():
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
    raise TransientError("still sending when the deadline passed")


def _open(part: Path, mode: str) -> BinaryIO:
    make_dir(part.parent)
    try:
        return part.open(mode)
    except OSError as exc:
        raise DataError(f"{part}: cannot write ({reason(exc)})") from None


def _http_failure(url: str, exc: urllib.error.HTTPError) -> Exception:
    status = f"HTTP {exc.code} {exc.reason}".strip()
    if 300 <= exc.code < 400:
        return DataError(f"cannot download {url} (HTTP {exc.code}: too many or looping redirects)")
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
