"""A loopback HTTP server for hermetic download tests: Range support, request log, faults."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_S = 0.3


@dataclass
class LoopbackServer:
    """Files served on 127.0.0.1 with Range support, a request log and injectable faults."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    fail_next: int = 0  # answer this many requests with 503
    cut_next: int = 0  # send half the body of this many responses, then close the connection
    ignore_range: bool = False  # answer Range requests with 200 and the whole file
    stall_next: int = 0  # leave this many requests unanswered for STALL_S, then hang up

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


class _Handler(BaseHTTPRequestHandler):
    state: LoopbackServer

    def do_GET(self) -> None:
        state = self.state
        state.requests.append((self.path, self.headers.get("Range")))
        if state.stall_next > 0:
            state.stall_next -= 1
            time.sleep(STALL_S)
            self.close_connection = True
            return
        if state.fail_next > 0:
            state.fail_next -= 1
            self.send_error(503, "Service Unavailable")
            return
        data = state.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = int(self.headers["Range"][6:].rstrip("-")) if self.headers.get("Range") else 0
        if state.ignore_range:
            start = 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.cut_next > 0:
            state.cut_next -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(state: LoopbackServer) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving `state` on 127.0.0.1 (port 0, recorded in `state.port`) in a thread."""
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    return server, thread
