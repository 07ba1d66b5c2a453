"""The live stream behind /api/stream: 16-bit PCM frames in, posteriors and detections out."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from speechrnn.audio import SAMPLE_RATE
from speechrnn.errors import SpeechRNNError
from speechrnn.inference.decisions import Detection
from speechrnn.inference.predict import Predictor

MAX_FRAME_SECONDS = 10.0  # longer binary frames are refused
MAX_TEXT_CHARS = 256  # longer text frames are refused unparsed ({"type": "stop"} is 16)
WS_MAX_BYTES = 2**20  # frames over this are closed (1009) by the WebSocket layer, unread
CLOSE_INVALID = 1007  # WebSocket close code: invalid frame payload data


class StreamError(SpeechRNNError):
    """A client sent a frame that is not part of the /api/stream protocol."""


class LiveSession:
    """One client's stream: the predictor's live detector (a causal model's listener, else
    sliding windows), answers as JSON events."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.scanner = predictor.live()

    def hello(self) -> dict[str, object]:
        listening = self.predictor.listening
        return {
            "type": "ready",
            "labels": self.predictor.labels,
            "sample_rate": SAMPLE_RATE,
            "settings": asdict(self.predictor.stream),
            "detector": listening.point.to_metadata() if listening else None,
        }

    def feed(self, samples: np.ndarray) -> list[dict[str, object]]:
        """Events for (T,) float32 samples: settled detections, then the newest posteriors."""
        events = self._detections(self.scanner.feed(samples))
        smoothed = self.scanner.smoothed
        if smoothed is not None:
            power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
            events.append(
                {
                    "type": "posteriors",
                    "time": round(self.scanner.detector.seconds, 3),
                    "probabilities": [round(float(p), 4) for p in smoothed],
                    "level_db": round(10.0 * np.log10(power + 1e-10), 1),
                }
            )
        return events

    def finish(self) -> list[dict[str, object]]:
        """The client's audio has ended: the last detections and an `end` event."""
        events = self._detections(self.scanner.finish())
        return [*events, {"type": "end", "time": round(self.scanner.detector.seconds, 3)}]

    def _detections(self, found: list[Detection]) -> list[dict[str, object]]:
        now = round(self.scanner.detector.seconds, 3)
        return [{"type": "detection", **asdict(d), "time": now} for d in found]


def pcm16(data: bytes) -> np.ndarray:
    """(T,) float32 samples of a binary frame of little-endian 16-bit mono PCM at 16 kHz."""
    if not data or len(data) % 2:
        raise StreamError(
            f"binary frames hold 16-bit samples: an even, non-zero number of bytes, got {len(data)}"
        )
    if len(data) > MAX_FRAME_SECONDS * SAMPLE_RATE * 2:
        raise StreamError(
            f"binary frame too long ({len(data) // 2} samples; at most "
            f"{MAX_FRAME_SECONDS:g} s = {int(MAX_FRAME_SECONDS * SAMPLE_RATE)})"
        )
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def check_stop(text: str) -> None:
    """Accept a text frame only if it is the one command, {"type": "stop"}."""
    if len(text) > MAX_TEXT_CHARS:
        raise StreamError(
            f'text frame too long ({len(text)} characters; the only command is {{"type": "stop"}})'
        )
    try:
        message = json.loads(text)
    except ValueError:
        raise StreamError('text frames must be JSON, e.g. {"type": "stop"}') from None
    if not isinstance(message, dict) or message.get("type") != "stop":
        raise StreamError(f'unknown command {text[:80]!r}; the only one is {{"type": "stop"}}')


async def serve_stream(websocket: WebSocket, predictor: Predictor) -> None:
    """Run one /api/stream connection; a protocol error closes it with an `error` event, and a
    client that has gone ends it quietly."""
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.accept()
        await _converse(websocket, LiveSession(predictor))


async def _converse(websocket: WebSocket, session: LiveSession) -> None:
    await websocket.send_json(session.hello())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                samples = pcm16(message["bytes"])
                events = await run_in_threadpool(session.feed, samples)
            else:
                check_stop(message.get("text") or "")
                events = await run_in_threadpool(session.finish)
            for event in events:
                await websocket.send_json(event)
            if events and events[-1]["type"] == "end":
                await websocket.close()
                return
    except StreamError as exc:
        await websocket.send_json({"type": "error", "message": str(exc)})
        await websocket.close(code=CLOSE_INVALID, reason="protocol error")
