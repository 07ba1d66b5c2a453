"""The speechrnn-serve web app over one Predictor: the page, the JSON API, the live WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from speechrnn.data.files import sha256_file
from speechrnn.errors import SpeechRNNError
from speechrnn.inference.backends import OnnxBackend
from speechrnn.inference.predict import Predictor, json_record
from speechrnn.inference.serve.stream import serve_stream

STATIC = Path(__file__).parent / "static"
UPLOAD_NAME = "upload"  # the file name of a raw-body upload without ?name=


@dataclass(frozen=True)
class BodyDeadlines:
    """How long a request body may take to arrive: between two pieces, and in all (seconds)."""

    idle_s: float = 30.0
    total_s: float = 300.0


class UploadTooLarge(Exception):
    """The request body is over --max-upload-mb."""


class UploadTooSlow(Exception):
    """The request body did not arrive within the `BodyDeadlines`."""


def describe(predictor: Predictor, model: Path, max_upload_bytes: int) -> dict[str, object]:
    """What GET /api/model answers: labels, settings, model kind and checksum."""
    return {
        "model": model.name,
        "kind": "onnx" if isinstance(predictor.backend, OnnxBackend) else "checkpoint",
        "sha256": sha256_file(model, progress=False),
        "labels": predictor.labels,
        "settings": {
            "top_k": predictor.top_k,
            "threshold": predictor.threshold,
            "max_seconds": predictor.max_seconds,
            "max_upload_mb": round(max_upload_bytes / 2**20, 3),
            "stream": asdict(predictor.stream),
        },
    }


def create_app(
    predictor: Predictor,
    model: Path,
    max_upload_bytes: int,
    deadlines: BodyDeadlines = BodyDeadlines(),
) -> Starlette:
    """The ASGI app; `model` is the file `predictor` was loaded from (named by /api/model)."""
    summary = describe(predictor, model, max_upload_bytes)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def model_info(request: Request) -> Response:
        return JSONResponse(summary)

    async def predict(request: Request) -> Response:
        try:
            body = await _read_body(request, max_upload_bytes, deadlines)
            name, data = await _upload(request, body)
        except ClientDisconnect:  # the client hung up: nobody reads an answer
            return Response(status_code=400)
        except UploadTooLarge:
            limit = summary["settings"]["max_upload_mb"]  # type: ignore[index]
            return _error(413, f"upload too large (over --max-upload-mb {limit:g} MiB)")
        except UploadTooSlow as exc:
            return _error(408, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            outcome = await run_in_threadpool(predictor.predict_bytes, data, name)
        except SpeechRNNError as exc:
            return JSONResponse(json_record(name, exc), status_code=400)
        return JSONResponse(json_record(name, outcome))

    async def stream(websocket: WebSocket) -> None:
        await serve_stream(websocket, predictor)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/model", model_info),
        Route("/api/predict", predict, methods=["POST"]),
        WebSocketRoute("/api/stream", stream),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


async def _read_body(request: Request, limit: int, deadlines: BodyDeadlines) -> bytes:
    """The request body, refused (UploadTooLarge) as soon as it is known to exceed `limit`, or
    (UploadTooSlow) once it stalls or takes longer than `deadlines` allow."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge
    body = bytearray()
    pieces = request.stream()
    with anyio.move_on_after(deadlines.total_s):
        while True:
            with anyio.move_on_after(deadlines.idle_s) as idle:
                chunk = await anext(pieces, None)
            if idle.cancelled_caught:
                raise UploadTooSlow(f"upload stalled: nothing arrived for {deadlines.idle_s:g} s")
            if chunk is None:
                return bytes(body)
            body += chunk
            if len(body) > limit:
                raise UploadTooLarge
    raise UploadTooSlow(f"upload too slow: not complete after {deadlines.total_s:g} s")


async def _upload(request: Request, body: bytes) -> tuple[str, bytes]:
    """(file name, bytes) of a multipart upload's first file or of a raw body (?name=...)."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return request.query_params.get("name") or UPLOAD_NAME, body

    async def replay() -> AsyncIterator[bytes]:
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, replay()).parse()
    except MultiPartException as exc:
        raise ValueError(f"malformed multipart body ({exc.message})") from None
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise ValueError("the multipart body holds no file (send the audio as a file field)")
    upload = files[0]
    try:
        return Path(upload.filename or "").name or UPLOAD_NAME, await upload.read()
    finally:
        await form.close()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
