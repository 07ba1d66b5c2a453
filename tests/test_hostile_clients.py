"""Hostile clients of speechrnn-serve on a real socket: no traceback, and the others are served."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from speechrnn.cli.serve import server_config
from speechrnn.inference.predict import Predictor
from speechrnn.inference.serve.app import BodyDeadlines, create_app
from speechrnn.inference.serve.stream import MAX_TEXT_CHARS, WS_MAX_BYTES
from speechrnn.inference.streaming import StreamConfig

from support.cli import console_script
from support.inference import tiny_checkpoint
from support.tones import ToneBackend

DEADLINES = BodyDeadlines(idle_s=0.5, total_s=2.0)
BOUND_S = 10.0  # generous: a well-behaved request takes milliseconds here
RATE = 16_000


class Records(logging.Handler):
    """Every log record of the server at WARNING or above, or with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.bad.append(self.format(record) + repr(record.exc_info))


class Server:
    """The speechrnn-serve app over the tone model, run by uvicorn as the command runs it."""

    def __init__(self, model: Path) -> None:
        predictor = Predictor(ToneBackend(), top_k=2, stream=StreamConfig(batch_size=8))
        app = create_app(predictor, model, 2**20, DEADLINES)
        self.server = uvicorn.Server(server_config(app))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.listener]}, daemon=True
        )
        self.records = Records()

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        for name in ("uvicorn", ""):  # uvicorn's own loggers; asyncio's and the rest
            logging.getLogger(name).addHandler(self.records)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in ("uvicorn", ""):
            logging.getLogger(name).removeHandler(self.records)
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.listener.close()

    def raw(self, data: bytes) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=BOUND_S)
        sock.sendall(data)
        return sock

    def ws(self, **options: object) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.port}/api/stream", open_timeout=BOUND_S, **options)

    def check_served_and_quiet(self) -> None:
        """A well-behaved upload is answered in time, and nothing went wrong in the log."""
        start = time.monotonic()
        with self.raw(_post(WAV)) as sock:
            status, body = _response(sock)
        assert status == 200 and json.loads(body)["label"] in ("low", "high", "_silence_", "noise")
        assert time.monotonic() - start < BOUND_S
        time.sleep(0.3)  # the server handles a hang-up on its own time
        assert self.records.bad == []


def _wav(seconds: float) -> bytes:
    out = io.BytesIO()
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(out, 0.3 * np.sin(2 * np.pi * 440 * t), RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


WAV = _wav(1.0)


def _post(body: bytes, length: int | None = None, kind: str = "audio/wav") -> bytes:
    length = len(body) if length is None else length
    head = f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
    return f"{head}Content-Length: {length}\r\nConnection: close\r\n\r\n".encode() + body


def _response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clients") / "any.wav"
    path.write_bytes(WAV)
    return path


@pytest.fixture
def server(model: Path) -> Iterator[Server]:
    with Server(model) as running:
        yield running


def _hang_up(data: bytes) -> Callable[[Server], None]:
    def act(server: Server) -> None:
        server.raw(data).close()

    return act


def _answered_to_nobody(server: Server) -> None:
    sock = server.raw(_post(_wav(3.0)))
    sock.shutdown(socket.SHUT_RDWR)  # gone while the model runs
    sock.close()


MULTIPART = "multipart/form-data; boundary=x"
HANG_UPS = {
    "declares 1 MB, sends 100 bytes": _hang_up(_post(bytes(100), 10**6)),
    "multipart cut short": _hang_up(
        _post(b'--x\r\nContent-Disposition: form-data; name="f"', 10**6, MULTIPART)
    ),
    "chunked cut short": _hang_up(
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"
    ),
    "headers only": _hang_up(_post(b"", 5000)),
    "half a request line": _hang_up(b"POST /api/pre"),
    "gone before its answer": _answered_to_nobody,
    "length shorter than the body": _hang_up(_post(WAV + b"GARBAGE / HTTP/9\r\n\r\n", len(WAV))),
    "length not a number": _hang_up(_post(b"abc").replace(b"Length: 3", b"Length: 3x")),
}


@pytest.mark.parametrize("act", list(HANG_UPS.values()), ids=list(HANG_UPS))
def test_clients_that_hang_up_leave_no_trace(server: Server, act: Callable[[Server], None]) -> None:
    for _ in range(3):
        act(server)
    server.check_served_and_quiet()


def test_a_stalled_body_gets_a_408_while_others_are_served(server: Server) -> None:
    stalled = server.raw(_post(bytes(100), 10**5))
    server.check_served_and_quiet()  # answered while the stalled body waits
    status, body = _response(stalled)
    assert status == 408 and "nothing arrived for 0.5 s" in json.loads(body)["error"]
    stalled.close()


def test_a_trickling_body_gets_a_408_at_its_deadline(server: Server) -> None:
    start = time.monotonic()
    sock = server.raw(_post(b"", 10**5))
    with pytest.raises(OSError):  # the server answers and closes while bytes still arrive
        for _ in range(100):
            sock.sendall(b"x")
            time.sleep(0.1)
    assert DEADLINES.total_s <= time.monotonic() - start < BOUND_S
    status, body = _response(sock)
    assert status == 408 and "not complete after 2 s" in json.loads(body)["error"]
    sock.close()
    server.check_served_and_quiet()


def test_many_stalled_clients_at_once_do_not_block_the_others(server: Server) -> None:
    stalled = [server.raw(_post(bytes(10), 10**5)) for _ in range(50)]
    server.check_served_and_quiet()
    for sock in stalled:
        sock.close()
    server.check_served_and_quiet()


def _error_then_closed(ws: ClientConnection, code: int, needle: str) -> None:
    event = json.loads(ws.recv(timeout=BOUND_S))
    assert event["type"] == "error" and needle in event["message"], event
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=BOUND_S)
    assert ws.close_code == code


FRAMES = {
    "100,000 [": ("[" * 100_000, "text frame too long"),
    "100,000 { nested": ('{"a":' * 100_000, "text frame too long"),
    f"{MAX_TEXT_CHARS} [": ("[" * MAX_TEXT_CHARS, "JSON"),
    "empty text": ("", "JSON"),
    "a JSON list": ('["stop"]', "unknown command"),
    "a number": ("1e999999", "unknown command"),
    "NUL": ("\0", "JSON"),
    "empty binary": (b"", "even, non-zero"),
    "odd binary": (b"\x01\x02\x03", "even, non-zero"),
    "10 s and a sample": (bytes(2 * (10 * RATE + 1)), "binary frame too long"),
}


@pytest.mark.parametrize(("frame", "needle"), list(FRAMES.values()), ids=list(FRAMES))
def test_every_odd_frame_gets_the_error_event(
    server: Server, frame: str | bytes, needle: str
) -> None:
    with server.ws(max_size=None) as ws:
        assert json.loads(ws.recv(timeout=BOUND_S))["type"] == "ready"
        ws.send(frame)
        _error_then_closed(ws, 1007, needle)
    server.check_served_and_quiet()


def _text_not_utf8(ws: ClientConnection) -> None:
    ws.socket.sendall(bytes([0x81, 0x82]) + bytes(4) + b"\xff\xfe")  # masked with zeros


PROTOCOL_ERRORS = {
    "over the frame limit": (lambda ws: ws.send(bytes(WS_MAX_BYTES + 2)), 1009),
    "text not UTF-8": (_text_not_utf8, 1007),
}


@pytest.mark.parametrize(
    ("send", "code"), list(PROTOCOL_ERRORS.values()), ids=list(PROTOCOL_ERRORS)
)
def test_frames_the_websocket_layer_refuses_are_closed_quietly(
    server: Server, send: Callable[[ClientConnection], None], code: int
) -> None:
    with server.ws(max_size=None) as ws:
        ws.recv(timeout=BOUND_S)
        send(ws)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=BOUND_S)
        assert ws.close_code == code
    server.check_served_and_quiet()


def test_a_client_gone_right_after_a_bad_frame_leaves_no_trace(server: Server) -> None:
    for frame in ("hello", "[" * 100_000, b"\x01"):
        for _ in range(5):
            ws = server.ws()
            ws.recv(timeout=BOUND_S)
            ws.send(frame)
            ws.socket.close()  # no close handshake: the error event finds nobody
    server.check_served_and_quiet()


def test_a_client_gone_while_audio_is_scanned_leaves_no_trace(server: Server) -> None:
    for _ in range(5):
        ws = server.ws()
        ws.recv(timeout=BOUND_S)
        ws.send(bytes(2 * 10 * RATE))  # 10 s of audio: events come after the hang-up
        ws.socket.close()
    server.check_served_and_quiet()


def test_a_misbehaving_stream_does_not_hold_up_a_request(server: Server) -> None:
    with server.ws() as ws:
        ws.recv(timeout=BOUND_S)
        for _ in range(20):
            ws.send(bytes(2 * RATE))
        server.check_served_and_quiet()  # answered while that stream is being scanned
        ws.send("{")
        assert "JSON" in next(
            json.loads(m)["message"] for m in ws if json.loads(m)["type"] == "error"
        )


def test_the_console_script_logs_no_traceback_for_hostile_clients(tmp_path: Path) -> None:
    """The issue's three cases against the real speechrnn-serve process, with its own logging."""
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    log = tmp_path / "serve.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [console_script("speechrnn-serve"), str(checkpoint), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        port = int(line.rstrip().rstrip("/").rsplit(":", 1)[1])
        for _ in range(3):
            socket.create_connection(("127.0.0.1", port)).sendall(_post(bytes(100), 10**6))
        with connect(f"ws://127.0.0.1:{port}/api/stream") as ws:
            ws.recv(timeout=BOUND_S)
            ws.send("[" * 100_000)
            _error_then_closed(ws, 1007, "text frame too long")
        gone = connect(f"ws://127.0.0.1:{port}/api/stream")
        gone.recv(timeout=BOUND_S)
        gone.send("hello")
        gone.socket.close()
        with socket.create_connection(("127.0.0.1", port), timeout=BOUND_S) as sock:
            sock.sendall(_post(WAV))
            assert _response(sock)[0] == 200
        time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text() and "ERROR" not in log.read_text(), log.read_text()
