"""Teaching the served model a word from the page: the takes found in a recording, then a new
model (taught by the Teacher speechrnn-serve hands in) served in place of the old one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from speechrnn.audio import decode_audio
from speechrnn.errors import AudioError, SpeechRNNError
from speechrnn.inference.backends import OnnxBackend
from speechrnn.inference.serve.served import Served
from speechrnn.inference.serve.uploads import BodyDeadlines, Upload, error, receive
from speechrnn.inference.takes import TakeError, Takes, find_takes


class Taught(Protocol):
    """A model taught a word: its files and what the teaching measured."""

    checkpoint: Path
    onnx: Path
    word: str

    def to_dict(self) -> dict[str, object]: ...


Teacher = Callable[[str, Takes], Taught]  # (word, takes) -> the taught model; SpeechRNNError


def teach_routes(
    served: Served, teacher: Teacher | None, no_teacher: str, deadlines: BodyDeadlines
) -> list[Route]:
    """POST /api/takes (the takes in the audio sent) and POST /api/enroll (teach `word` from
    them and serve the new model); one word is taught at a time."""
    busy = threading.Lock()

    async def takes(request: Request) -> Response:
        upload = await receive(request, served.max_upload_bytes, deadlines)
        if not isinstance(upload, Upload):
            return upload
        try:
            found = await run_in_threadpool(_find, upload, served.predictor.max_seconds)
        except SpeechRNNError as exc:
            return _refused(exc)
        return JSONResponse(found.to_dict())

    async def enroll(request: Request) -> Response:
        if teacher is None:
            return error(403, no_teacher)
        upload = await receive(request, served.max_upload_bytes, deadlines)
        if not isinstance(upload, Upload):
            return upload
        word = upload.fields.get("word") or request.query_params.get("word") or ""
        if not busy.acquire(blocking=False):
            return error(409, "already teaching a word; send this one when it is done")
        try:
            found = await run_in_threadpool(_find, upload, served.predictor.max_seconds)
            taught = await run_in_threadpool(teacher, word, found)
            await run_in_threadpool(_serve, served, taught)
        except SpeechRNNError as exc:
            return _refused(exc)
        finally:
            busy.release()
        return JSONResponse({**taught.to_dict(), "model": served.summary})

    return [
        Route("/api/takes", takes, methods=["POST"]),
        Route("/api/enroll", enroll, methods=["POST"]),
    ]


def _find(upload: Upload, max_seconds: float) -> Takes:
    """The takes in the uploaded recordings (one recording: several takes; several: one each)."""
    recordings = []
    for name, data in upload.files:
        try:
            recordings.append((name, decode_audio(data, name, max_seconds=max_seconds)))
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            raise AudioError(f"{name}: cannot read ({type(exc).__name__}: {exc})") from None
    return find_takes(recordings)


def _serve(served: Served, taught: Taught) -> None:
    """Serve the taught model in the kind the old one was (ONNX, or the checkpoint)."""
    onnx = isinstance(served.predictor.backend, OnnxBackend)
    path = taught.onnx if onnx else taught.checkpoint
    served.load(path, f"{path} (taught {taught.word!r})")


def _refused(exc: SpeechRNNError) -> JSONResponse:
    problems = exc.problems if isinstance(exc, TakeError) else [str(exc)]
    return error(400, str(exc), problems=problems)
