"""Request bodies of speechrnn-serve: read within limits and deadlines, multipart files parsed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

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


async def read_body(request: Request, limit: int, deadlines: BodyDeadlines) -> bytes:
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


@dataclass(frozen=True)
class Upload:
    """A request's files (name, bytes), in order, and its text fields."""

    files: list[tuple[str, bytes]]
    fields: dict[str, str]


async def parse_upload(request: Request, body: bytes) -> Upload:
    """The files and fields of a multipart body, or a raw body as one file (?name=... names it);
    ValueError for a malformed multipart body or one without a file."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return Upload([(request.query_params.get("name") or UPLOAD_NAME, body)], {})

    async def replay() -> AsyncIterator[bytes]:
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, replay()).parse()
    except MultiPartException as exc:
        raise ValueError(f"malformed multipart body ({exc.message})") from None
    try:
        files, fields = [], {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append((Path(value.filename or "").name or UPLOAD_NAME, await value.read()))
            else:
                fields[key] = value
    finally:
        await form.close()
    if not files:
        raise ValueError("the multipart body holds no file (send the audio as a file field)")
    return Upload(files, fields)


async def receive(request: Request, limit: int, deadlines: BodyDeadlines) -> Upload | Response:
    """The request's upload, or the error response the API answers instead: 413 over `limit`,
    408 too slow, 400 malformed (and an empty 400 to a client that hung up)."""
    try:
        return await parse_upload(request, await read_body(request, limit, deadlines))
    except ClientDisconnect:  # the client hung up: nobody reads an answer
        return Response(status_code=400)
    except UploadTooLarge:
        limit_mb = round(limit / 2**20, 3)
        return error(413, f"upload too large (over --max-upload-mb {limit_mb:g} MiB)")
    except UploadTooSlow as exc:
        return error(408, str(exc))
    except ValueError as exc:
        return error(400, str(exc))


def error(status: int, message: str, **extra: object) -> JSONResponse:
    """The API's error answer: {"error": message, ...}."""
    return JSONResponse({"error": message, **extra}, status_code=status)
