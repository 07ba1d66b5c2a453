"""Hostile HTTP servers: every download loop ends, with one line, within seconds."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from speechrnn.data.gsc.archive import extract
from speechrnn.data.gsc.download import Archive, fetch
from speechrnn.data.gsc.transfer import Retry, download
from speechrnn.errors import DataError

BODY = bytes(range(256)) * 64  # 16 KiB
FAST = Retry(retries=3, backoff_s=0.001, timeout_s=0.5, deadline_s=20.0)
BOUND_S = 15.0  # generous: each case takes well under a second
Handler = Callable[[BaseHTTPRequestHandler, int], None]  # (request, count so far)


@pytest.fixture
def hostile() -> Iterator[Callable[[Handler], tuple[str, list[str | None]]]]:
    """Serve one handler function on loopback; returns (url, Range headers seen)."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Handler) -> tuple[str, list[str | None]]:
        seen: list[str | None] = []

        class Hostile(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Range"))
                seen_if.append(self.headers.get("If-Range"))
                answer(self, len(seen))

            def log_message(self, *args: object) -> None:
                pass

        seen_if: list[str | None] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
        server.daemon_threads = True
        server.seen_if = seen_if  # type: ignore[attr-defined]
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/a.tar.gz", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _send(req: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    req.send_response(status)
    for key, value in headers.items():
        req.send_header(key.replace("_", "-"), value)
    req.end_headers()
    req.wfile.write(body)


def _timed_failure(url: str, part: Path, retry: Retry = FAST) -> str:
    start = time.monotonic()
    with pytest.raises(DataError) as caught:
        download(url, part, progress=False, retry=retry)
    assert time.monotonic() - start < BOUND_S
    message = str(caught.value)
    assert "\n" not in message and url in message
    return message


def test_206_for_another_range_is_a_failed_try(hostile, tmp_path: Path) -> None:
    def wrong_range(req: BaseHTTPRequestHandler, n: int) -> None:
        _send(req, 206, BODY[:10], Content_Range=f"bytes 0-9/{len(BODY)}", Content_Length="10")

    url, seen = hostile(wrong_range)
    part = tmp_path / "a.part"
    part.write_bytes(BODY[:100])
    message = _timed_failure(url, part)
    assert "HTTP 206 with Content-Range 'bytes 0-9/16384' for a request from byte 100" in message
    assert "gave up after 4 tries; 100 bytes kept" in message
    assert len(seen) == 4 and part.read_bytes() == BODY[:100]  # the valid part is kept


def test_empty_200_is_a_failed_try(hostile, tmp_path: Path) -> None:
    url, seen = hostile(lambda req, n: _send(req, 200, b""))
    message = _timed_failure(url, tmp_path / "a.part")
    assert "HTTP 200 with an empty body; gave up after 4 tries" in message and len(seen) == 4


def test_200_shorter_than_its_length_is_retried_then_one_line(hostile, tmp_path: Path) -> None:
    def short(req: BaseHTTPRequestHandler, n: int) -> None:
        _send(req, 200, BODY[:50], Content_Length=str(len(BODY)))
        req.close_connection = True

    url, _seen = hostile(short)
    message = _timed_failure(url, tmp_path / "a.part")
    assert "connection closed early, 50 of 16384 bytes" in message


def test_redirect_loop_fails_at_once(hostile, tmp_path: Path) -> None:
    url, seen = hostile(lambda req, n: _send(req, 302, b"", Location="/a.tar.gz"))
    message = _timed_failure(url, tmp_path / "a.part")
    assert "HTTP 302" in message and "looping redirects" in message
    assert len(seen) <= 11


def test_stalling_server_times_out_and_gives_up(hostile, tmp_path: Path) -> None:
    url, _seen = hostile(lambda req, n: time.sleep(1.0))
    retry = Retry(retries=1, backoff_s=0.001, timeout_s=0.1)
    assert "timed out; gave up after 2 tries" in _timed_failure(url, tmp_path / "a.part", retry)


def test_reset_connection_is_retried_then_one_line(hostile, tmp_path: Path) -> None:
    def reset(req: BaseHTTPRequestHandler, n: int) -> None:
        req.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        req.close_connection = True

    url, _seen = hostile(reset)
    assert "gave up after 4 tries" in _timed_failure(url, tmp_path / "a.part")


def test_endless_body_ends_at_the_deadline(hostile, tmp_path: Path) -> None:
    def endless(req: BaseHTTPRequestHandler, n: int) -> None:
        req.send_response(200)
        req.end_headers()
        try:
            while True:
                req.wfile.write(b"x" * 4096)
                time.sleep(0.001)
        except OSError:
            pass

    url, _ = hostile(endless)
    retry = Retry(retries=3, backoff_s=0.001, timeout_s=1.0, deadline_s=0.5)
    message = _timed_failure(url, tmp_path / "a.part", retry)
    assert "still sending when the deadline passed; gave up after the 0.5 s deadline" in message


def test_backoff_grows_and_is_bounded(hostile, tmp_path: Path) -> None:
    delays: list[float] = []
    url, _ = hostile(lambda req, n: _send(req, 503, b""))
    retry = Retry(retries=5, backoff_s=0.5, sleep=delays.append)
    _timed_failure(url, tmp_path / "a.part", retry)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_if_range_changed_file_restarts_instead_of_mixing(hostile, tmp_path: Path) -> None:
    new = bytes(reversed(BODY))

    def changing(req: BaseHTTPRequestHandler, n: int) -> None:
        if n == 1:  # the first answer: old file, cut half way
            _send(req, 200, BODY[:100], Content_Length=str(len(BODY)), ETag='"v1"')
            req.close_connection = True
        elif req.headers.get("If-Range") == '"v1"':  # changed since: the whole new file
            _send(req, 200, new, Content_Length=str(len(new)), ETag='"v2"')
        else:
            _send(req, 500, b"")

    url, seen = hostile(changing)
    part = tmp_path / "a.part"
    download(url, part, progress=False, retry=FAST)
    assert part.read_bytes() == new and seen == [None, "bytes=100-"]
    assert not part.with_name("a.part.validator").exists()


def test_validator_survives_a_failed_run_for_the_next(hostile, tmp_path: Path) -> None:
    def cut(req: BaseHTTPRequestHandler, n: int) -> None:
        _send(req, 200, BODY[:100], Content_Length=str(len(BODY)), ETag='"v1"')
        req.close_connection = True

    url, _ = hostile(cut)
    part = tmp_path / "a.part"
    _timed_failure(url, part, Retry(retries=0))
    assert part.read_bytes() == BODY[:100]
    assert json.loads(part.with_name("a.part.validator").read_text()) == {"if_range": '"v1"'}


def test_416_for_a_longer_file_is_a_failed_try(hostile, tmp_path: Path) -> None:
    url, _seen = hostile(lambda req, n: _send(req, 416, b"", Content_Range="bytes */99999"))
    part = tmp_path / "a.part"
    part.write_bytes(BODY[:10])
    assert "HTTP 416 for byte 10 of a 99999-byte file" in _timed_failure(url, part)
    assert part.read_bytes() == BODY[:10]


def test_download_console_script_ends_on_a_lying_server(hostile, tmp_path: Path) -> None:
    from support.cli import run_console

    def wrong_range(req: BaseHTTPRequestHandler, n: int) -> None:
        _send(req, 206, BODY[:10], Content_Range="bytes 0-9/99", Content_Length="10")

    url, seen = hostile(wrong_range)
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "a.tar.gz.part").write_bytes(BODY[:64])
    start = time.monotonic()
    done = run_console(
        "speechrnn-download",
        f"data.url={url}",
        "data.sha256=null",
        "data.root=null",
        f"data.cache_dir={tmp_path / 'cache'}",
        timeout=120,
    )
    assert time.monotonic() - start < 60  # 1 + 2 + 4 + 8 s of back-off
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot download {url} (HTTP 206 with Content-Range")
    assert "Traceback" not in done.stderr and len(seen) == 5
    assert (downloads / "a.tar.gz.part").read_bytes() == BODY[:64]


def _tar_of_empty_members(count: int) -> bytes:
    """A tar stream of `count` empty files, built from one header (cheap at any count)."""
    info = tarfile.TarInfo("f0000000")
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    out = io.BytesIO()
    for i in range(count):
        name = f"f{i:07d}".encode()
        header[:8] = name
        header[148:156] = b"        "
        header[148:155] = f"{sum(header):06o}\0".encode()
        out.write(header)
    out.write(bytes(1024))
    return out.getvalue()


def test_archive_with_too_many_members_is_refused_while_listing(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar"
    archive.write_bytes(_tar_of_empty_members(30_000))
    start = time.monotonic()
    with pytest.raises(DataError, match=r"many.tar: more than 20000 members; refusing"):
        extract(archive, tmp_path / "out", {}, progress=False, max_members=20_000)
    assert time.monotonic() - start < BOUND_S
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [archive]


def test_killed_extraction_then_a_clean_rerun(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar"
    archive.write_bytes(_tar_of_empty_members(50))
    leftover = tmp_path / ".gsc.extracting-abc"
    (leftover / "half").mkdir(parents=True)
    local = Archive(str(archive), hashlib.sha256(archive.read_bytes()).hexdigest())
    from speechrnn.data.gsc.download import ensure_extracted

    dest = ensure_extracted(local, tmp_path / "gsc", tmp_path / "dl", progress=False)
    assert len(list(dest.glob("f*"))) == 50 and not leftover.exists()


def test_fetch_of_a_lying_server_keeps_no_final_file(hostile, tmp_path: Path) -> None:
    url, _ = hostile(lambda req, n: _send(req, 200, b""))
    with pytest.raises(DataError, match="empty body"):
        fetch(Archive(url, "0" * 64), tmp_path / "dl", progress=False, retry=FAST)
    assert not (tmp_path / "dl" / "a.tar.gz").exists()
