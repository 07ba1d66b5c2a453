"""Download, verify and safely extract GSC-layout archives, served over loopback HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile as sf

from speechrnn.data.gsc.archive import MARKER, PARTIAL
from speechrnn.data.gsc.download import ARCHIVES, Archive, ensure_extracted, fetch
from speechrnn.data.gsc.transfer import Retry
from speechrnn.errors import ConfigError, DataError

if TYPE_CHECKING:
    from support.loopback import LoopbackServer

FAST = Retry(retries=3, backoff_s=0.001, timeout_s=10.0)
NAME = "speech_commands_test.tar.gz"


def _corpus(root: Path) -> Path:
    """A tiny tree in GSC layout: two words, two speakers, background noise, split lists."""
    rng = np.random.default_rng(0)
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        for speaker in ("0a1b2c3d", "4e5f6a7b"):
            wave = rng.uniform(-0.5, 0.5, 1600).astype(np.float32)
            sf.write(root / word / f"{speaker}_nohash_0.wav", wave, 16000, subtype="PCM_16")
    (root / "_background_noise_").mkdir()
    noise = rng.uniform(-0.1, 0.1, 8000).astype(np.float32)
    sf.write(root / "_background_noise_" / "white_noise.wav", noise, 16000, subtype="PCM_16")
    (root / "validation_list.txt").write_text("yes/0a1b2c3d_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/4e5f6a7b_nohash_0.wav\n")
    return root


def _tar_gz(tree: Path, arcname: str = ".") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tree, arcname=arcname)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("corpus") / "src")


@pytest.fixture(scope="module")
def payload(corpus: Path) -> bytes:
    return _tar_gz(corpus)


@pytest.fixture
def served(http_server: LoopbackServer, payload: bytes) -> Archive:
    http_server.files[NAME] = payload
    return Archive(http_server.url(NAME), hashlib.sha256(payload).hexdigest())


def _same_tree(extracted: Path, corpus: Path) -> None:
    wanted = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    got = sorted(p.relative_to(extracted) for p in extracted.rglob("*") if p.is_file())
    assert got == sorted([*wanted, Path(MARKER)])
    for rel in wanted:
        assert (extracted / rel).read_bytes() == (corpus / rel).read_bytes()


def _no_leftovers(dest: Path) -> None:
    assert not list(dest.parent.glob(f".{dest.name}{PARTIAL}*"))


def test_download_verify_extract_end_to_end(
    tmp_path: Path, served: Archive, corpus: Path, http_server: LoopbackServer
) -> None:
    dest = ensure_extracted(served, tmp_path / "gsc", tmp_path / "downloads", progress=False)
    assert dest == tmp_path / "gsc"
    _same_tree(dest, corpus)
    assert sf.read(dest / "yes" / "0a1b2c3d_nohash_0.wav")[0].shape == (1600,)
    marker = json.loads((dest / MARKER).read_text())
    assert marker["url"] == served.url and marker["sha256"] == served.sha256
    assert marker["files"] == 7
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == [NAME, f"{NAME}.lock"]
    _no_leftovers(dest)
    seen = len(http_server.requests)
    assert ensure_extracted(served, dest, tmp_path / "downloads", progress=False) == dest
    assert len(http_server.requests) == seen == 1


def test_wrong_checksum_says_expected_and_got_and_keeps_no_tree(
    tmp_path: Path, served: Archive, http_server: LoopbackServer
) -> None:
    wrong = Archive(served.url, "0" * 64)
    with pytest.raises(DataError) as err:
        ensure_extracted(wrong, tmp_path / "gsc", tmp_path / "dl", progress=False, retry=FAST)
    message = str(err.value)
    assert "0" * 64 in message and served.sha256 in message and "\n" not in message
    assert f"moved to {tmp_path / 'dl' / NAME}.bad" in message
    assert not (tmp_path / "gsc").exists()
    _no_leftovers(tmp_path / "gsc")
    assert not (tmp_path / "dl" / f"{NAME}.part").exists()
    ensure_extracted(served, tmp_path / "gsc", tmp_path / "dl", progress=False, retry=FAST)
    assert http_server.requests[-1] == (f"/{NAME}", None)  # started clean, no resume of the bad one


def test_wrong_checksum_leaves_a_valid_tree_and_download_untouched(
    tmp_path: Path, served: Archive, http_server: LoopbackServer
) -> None:
    dest = ensure_extracted(served, tmp_path / "gsc", tmp_path / "dl", progress=False)
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    wrong = Archive(served.url, "f" * 64)
    with pytest.raises(DataError, match=f"sha256 {served.sha256}.*sha256 f{{64}}"):
        ensure_extracted(wrong, dest, tmp_path / "dl", progress=False, retry=FAST)
    kept = f"expected sha256 f{{64}}, got {served.sha256}; it was kept"
    with pytest.raises(DataError, match=kept):
        ensure_extracted(wrong, tmp_path / "other", tmp_path / "dl", progress=False, retry=FAST)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before
    assert (tmp_path / "dl" / NAME).is_file() and not (tmp_path / "other").exists()
    assert len(http_server.requests) == 1


def test_cut_connection_resumes_on_the_next_call(
    tmp_path: Path, served: Archive, payload: bytes, http_server: LoopbackServer
) -> None:
    http_server.cut_next = 1
    part = tmp_path / "dl" / f"{NAME}.part"
    with pytest.raises(DataError, match=r"connection closed early.*kept in .* to resume"):
        ensure_extracted(served, tmp_path / "gsc", tmp_path / "dl", False, retry=Retry(retries=0))
    assert part.stat().st_size == len(payload) // 2
    assert not (tmp_path / "gsc").exists()
    ensure_extracted(served, tmp_path / "gsc", tmp_path / "dl", progress=False, retry=FAST)
    assert http_server.requests[-1] == (f"/{NAME}", f"bytes={len(payload) // 2}-")
    assert (tmp_path / "gsc" / MARKER).is_file() and not part.exists()


def test_cut_connection_is_retried_within_one_call(
    tmp_path: Path, served: Archive, http_server: LoopbackServer
) -> None:
    http_server.cut_next = 2
    ensure_extracted(served, tmp_path / "gsc", tmp_path / "dl", progress=True, retry=FAST)
    ranges = [rng for _, rng in http_server.requests]
    assert ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])
    assert len(ranges) == 3


def test_server_ignoring_range_restarts_from_zero(
    tmp_path: Path, served: Archive, payload: bytes, http_server: LoopbackServer
) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f"{NAME}.part").write_bytes(b"junk that is not the archive")
    http_server.ignore_range = True
    path, digest = fetch(served, tmp_path / "dl", progress=False, retry=FAST)
    assert path.read_bytes() == payload and digest == served.sha256
    assert http_server.requests == [(f"/{NAME}", "bytes=28-")]


def test_complete_part_gets_416_and_is_used(
    tmp_path: Path, served: Archive, payload: bytes, http_server: LoopbackServer
) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f"{NAME}.part").write_bytes(payload)
    path, _ = fetch(served, tmp_path / "dl", progress=False, retry=FAST)
    assert path == tmp_path / "dl" / NAME and path.read_bytes() == payload
    assert http_server.requests == [(f"/{NAME}", f"bytes={len(payload)}-")]


def test_transient_503s_are_retried_with_backoff(
    tmp_path: Path, served: Archive, http_server: LoopbackServer
) -> None:
    http_server.fail_next = 2
    delays: list[float] = []
    retry = Retry(retries=3, backoff_s=0.5, sleep=delays.append)
    fetch(served, tmp_path / "dl", progress=False, retry=retry)
    assert len(http_server.requests) == 3 and delays == [0.5, 1.0]
    http_server.fail_next = 9
    with pytest.raises(DataError, match=r"HTTP 503 Service Unavailable; gave up after 4 tries"):
        fetch(served, tmp_path / "dl2", progress=False, retry=retry)


def test_timeouts_are_retried(tmp_path: Path, served: Archive, http_server: LoopbackServer) -> None:
    http_server.stall_next = 1
    fetch(served, tmp_path / "dl", progress=False, retry=Retry(backoff_s=0.001, timeout_s=0.05))
    assert len(http_server.requests) == 2
    http_server.stall_next = 2
    with pytest.raises(DataError, match=r"\(timed out; gave up after 2 tries\)"):
        fetch(served, tmp_path / "dl2", False, Retry(retries=1, backoff_s=0.001, timeout_s=0.05))


def test_unreachable_url_gives_one_offline_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{NAME}"
    with pytest.raises(DataError) as err:
        ensure_extracted(Archive(url, "0" * 64), tmp_path / "gsc", tmp_path / "dl", False)
    message = str(err.value)
    assert message.startswith(f"cannot reach {url} (Connection refused)")
    assert "data.root" in message and "data=synthetic" in message and "\n" not in message
    assert not (tmp_path / "gsc").exists()


def test_missing_file_on_the_server_is_not_retried(
    tmp_path: Path, http_server: LoopbackServer
) -> None:
    with pytest.raises(DataError, match=r"HTTP 404 Not Found.*check data\.url"):
        fetch(Archive(http_server.url("nope.tar.gz"), None), tmp_path, progress=False, retry=FAST)
    assert len(http_server.requests) == 1


def test_file_url_and_plain_path_are_used_in_place(
    tmp_path: Path, payload: bytes, corpus: Path
) -> None:
    local = tmp_path / NAME
    local.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    for i, url in enumerate((local.as_uri(), str(local))):
        dest = ensure_extracted(Archive(url, digest), tmp_path / f"gsc{i}", tmp_path / "dl", False)
        _same_tree(dest, corpus)
    assert not (tmp_path / "dl").exists()
    with pytest.raises(DataError, match="no such archive file"):
        ensure_extracted(Archive(str(tmp_path / "x.tgz"), None), tmp_path / "g", tmp_path, False)


def test_single_wrapping_folder_is_stripped(tmp_path: Path, corpus: Path) -> None:
    local = tmp_path / "wrapped.tar.gz"
    local.write_bytes(_tar_gz(corpus, arcname="speech_commands_v0.02"))
    dest = ensure_extracted(Archive(str(local), None), tmp_path / "gsc", tmp_path, False)
    _same_tree(dest, corpus)


def test_unverified_archive_warns_once_with_its_checksum(
    tmp_path: Path, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    local = tmp_path / "unpinned.tar.gz"
    local.write_bytes(payload)
    with caplog.at_level(logging.WARNING):
        for name in ("a", "b"):
            ensure_extracted(Archive(str(local), None), tmp_path / name, tmp_path, False)
    warnings = [r.getMessage() for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warnings) == 1 and hashlib.sha256(payload).hexdigest() in warnings[0]
    assert json.loads((tmp_path / "b" / MARKER).read_text())["sha256"] in warnings[0]


def _evil_archive(path: Path, outside: Path, kind: str) -> str:
    """A tar.gz with a good file, then one unsafe member of `kind`; returns the member name."""
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("yes/good.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        names = {"dotdot": "../evil", "absolute": str(outside / "evil")}
        member = tarfile.TarInfo(names.get(kind, "yes/evil"))
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, str(outside / "evil")
        elif kind == "hardlink":
            member.type, member.linkname = tarfile.LNKTYPE, "yes/good.txt"
        elif kind == "fifo":
            member.type = tarfile.FIFOTYPE
        elif kind == "device":
            member.type, member.devmajor, member.devminor = tarfile.CHRTYPE, 1, 3
        data = b"pwned" if kind in ("dotdot", "absolute") else b""
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return member.name


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "fifo", "device"])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "work"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    evil = tmp_path / "evil.tar.gz"
    name = _evil_archive(evil, outside, kind)
    with pytest.raises(DataError) as err:
        ensure_extracted(Archive(evil.as_uri(), None), root / "gsc", root / "dl", False)
    message = str(err.value)
    assert repr(name) in message and "unsafe member" in message and "\n" not in message
    assert not (root / "gsc").exists() and not list(outside.iterdir())
    assert not (tmp_path / "evil").exists() and not (root / "evil").exists()
    assert sorted(p.name for p in root.iterdir()) == [".gsc.lock"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_archive_gives_a_clear_error(tmp_path: Path, payload: bytes, damage: str) -> None:
    bad = tmp_path / "bad.tar.gz"
    data = {"truncated": payload[: len(payload) // 2], "garbage": b"not a tar" * 100}
    if damage == "empty":
        with tarfile.open(bad, "w:gz"):
            pass
    else:
        bad.write_bytes(data[damage])
    with pytest.raises(DataError, match=f"{bad}: .*(truncated|not a readable|empty)"):
        ensure_extracted(Archive(str(bad), None), tmp_path / "gsc", tmp_path, False)
    assert not (tmp_path / "gsc").exists()
    _no_leftovers(tmp_path / "gsc")


def test_users_own_directory_is_never_extracted_over(tmp_path: Path, payload: bytes) -> None:
    local = tmp_path / NAME
    local.write_bytes(payload)
    own = tmp_path / "mine"
    (own / "yes").mkdir(parents=True)
    (own / "yes" / "a.wav").write_bytes(b"mine")
    with pytest.raises(DataError, match=f"{own}: exists without a .* refusing to extract"):
        ensure_extracted(Archive(str(local), None), own, tmp_path, False)
    assert [p.name for p in own.rglob("*")] == ["yes", "a.wav"]
    (tmp_path / "empty").mkdir()
    empty = ensure_extracted(Archive(str(local), None), tmp_path / "empty", tmp_path, False)
    assert (empty / MARKER).is_file() and (empty / "yes").is_dir()


def test_half_extracted_leftovers_are_cleaned_and_never_used(
    tmp_path: Path, payload: bytes
) -> None:
    local = tmp_path / NAME
    local.write_bytes(payload)
    leftover = tmp_path / f".gsc{PARTIAL}abc123"
    (leftover / "yes").mkdir(parents=True)
    (leftover / MARKER).write_text("{}")
    dest = ensure_extracted(Archive(str(local), None), tmp_path / "gsc", tmp_path, False)
    assert not leftover.exists() and (dest / "yes").is_dir()
    assert json.loads((dest / MARKER).read_text())["sha256"] == hashlib.sha256(payload).hexdigest()


def test_known_archives_and_checksum_validation(tmp_path: Path) -> None:
    assert set(ARCHIVES) == {"v0.02", "v0.01", "test_v0.02", "test_v0.01"}
    assert ARCHIVES["v0.02"].file_name == "speech_commands_v0.02.tar.gz"
    assert ARCHIVES["test_v0.02"].sha256.startswith("cc2a00c1")
    assert ARCHIVES["test_v0.01"].sha256 is None
    assert Archive("x.tgz", " AF" + "0" * 62 + " ").sha256 == "af" + "0" * 62
    assert Archive("x.tgz", "").sha256 is None
    with pytest.raises(ConfigError, match=r"data\.sha256: expected 64 hex digits"):
        Archive("x.tgz", "abc")
    with pytest.raises(ConfigError, match=r"data\.url"):
        Archive("", None)
    with pytest.raises(ConfigError, match=r"data\.url: unsupported scheme 'ftp'"):
        Archive("ftp://example.org/a.tgz", None)
    with pytest.raises(DataError, match=r"http://127\.0\.0\.1:port/a: not a valid URL"):
        fetch(Archive("http://127.0.0.1:port/a", None), tmp_path, False, FAST)
