"""The speechrnn-serve web app over one Predictor: the page, the JSON API, the live WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
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


class UploadTooLarge(Exception):
    """The request body is over --max-upload-mb."""


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


def create_app(predictor: Predictor, model: Path, max_upload_bytes: int) -> Starlette:
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
            body = await _read_body(request, max_upload_bytes)
            name, data = await _upload(request, body)
        except UploadTooLarge:
            limit = summary["settings"]["max_upload_mb"]  # type: ignore[index]
            return _error(413, f"upload too large (over --max-upload-mb {limit:g} MiB)")
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


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (UploadTooLarge) as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadTooLarge
    return bytes(body)


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
