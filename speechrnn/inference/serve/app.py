"""The speechrnn-serve web app over one Predictor: the page, the JSON API, the live WebSocket;
teaching a word swaps the served model for the new one."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from speechrnn.errors import SpeechRNNError
from speechrnn.inference.predict import Predictor, json_record
from speechrnn.inference.serve.served import Served, describe
from speechrnn.inference.serve.stream import serve_stream
from speechrnn.inference.serve.teach import Teacher, teach_routes
from speechrnn.inference.serve.uploads import BodyDeadlines, Upload, receive

STATIC = Path(__file__).parent / "static"
DEADLINES = BodyDeadlines()
__all__ = ["BodyDeadlines", "Served", "create_app", "describe"]


def create_app(
    predictor: Predictor,
    model: Path,
    max_upload_bytes: int,
    deadlines: BodyDeadlines = DEADLINES,
    teacher: Teacher | None = None,
    no_teacher: str = "teaching is off for this server",
) -> Starlette:
    """The ASGI app; `model` is the file `predictor` was loaded from (named by /api/model).
    `teacher` teaches a word (POST /api/enroll); without it the API says `no_teacher`."""
    served = Served(predictor, model, max_upload_bytes)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def model_info(request: Request) -> Response:
        teach = {"enabled": teacher is not None, **({} if teacher else {"reason": no_teacher})}
        return JSONResponse({**served.summary, "teach": teach})

    async def predict(request: Request) -> Response:
        upload = await receive(request, max_upload_bytes, deadlines)
        if not isinstance(upload, Upload):
            return upload
        (name, data), current = upload.files[0], served.predictor
        try:
            outcome = await run_in_threadpool(current.predict_bytes, data, name)
        except SpeechRNNError as exc:
            return JSONResponse(json_record(name, exc), status_code=400)
        return JSONResponse(json_record(name, outcome))

    async def stream(websocket: WebSocket) -> None:
        await serve_stream(websocket, served.predictor)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/model", model_info),
        Route("/api/predict", predict, methods=["POST"]),
        *teach_routes(served, teacher, no_teacher, deadlines),
        WebSocketRoute("/api/stream", stream),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
