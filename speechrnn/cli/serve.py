"""speechrnn-serve: a local web page and JSON API that spot commands live from the microphone."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from speechrnn.cli.options import (
    CHECKPOINT_SUFFIXES,
    add_predictor_options,
    announce,
    from_options,
    model_parser,
    predictor_from_args,
)
from speechrnn.console import error_line, guarded, shown
from speechrnn.data.settings import DataConfig, cache_root
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError
from speechrnn.inference.predict import Predictor
from speechrnn.inference.released import find_release
from speechrnn.settings import bounded, check_ranges

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

    from speechrnn.inference.serve.teach import Taught, Teacher
    from speechrnn.inference.takes import Takes

DEFAULT_TOP_K = 3
HOST_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?")
SERVE_OPTIONS = {"host": "host", "port": "port", "max_upload_mb": "max_upload_mb"}


@dataclass(frozen=True)
class ServeSettings:
    """Where speechrnn-serve listens and the largest upload it reads."""

    host: str = "127.0.0.1"
    port: int = bounded(8000, 0, 65535)
    max_upload_mb: float = bounded(20.0, 0.001, 4096.0, " MiB")

    def __post_init__(self) -> None:
        check_ranges(self)
        if not _is_host(self.host):
            raise ConfigError(
                f"--host must be an IP address or a host name (letters, digits, '-', '_' and '.'), "
                f"got {shown(repr(self.host[:80]))}"
            )


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and HOST_NAME.fullmatch(host) is not None
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "speechrnn-serve",
        "Serve a model on a local web page (microphone, file drop, teaching new words) and a "
        "JSON API; without a model, the released model shipped with speechrnn.",
        "Exit status: 0 stopped, 2 bad arguments, model or address, 130 interrupted.",
    )
    add = parser.add_argument
    add("model_file", nargs="?", metavar="MODEL", help="the model, as -m MODEL")
    add(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; "
        "0.0.0.0 serves everyone who can reach this port)",
    )
    add("--port", type=int, default=8000, help="port to listen on, 0 to 65535; 0 picks a free one")
    add("--max-upload-mb", type=float, default=20.0, metavar="MB", help="largest upload (20)")
    add(
        "--weights",
        metavar="CKPT",
        help="the float checkpoint an ONNX model was exported from, to teach it words (default: "
        "the model itself when it is a checkpoint; the released model's own weights)",
    )
    add(
        "--words-dir",
        metavar="DIR",
        help="where taught models are written (default: <cache>/words, the speechrnn cache)",
    )
    add("--no-teach", action="store_true", help="turn the page's Teach a word panel off")
    add_predictor_options(parser)
    parser.set_defaults(top_k=DEFAULT_TOP_K)
    return parser


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-serve: load the model, listen, serve until interrupted."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as speechrnn-predict does
    try:
        args = build_parser().parse_args(argv)
        if args.model_file is not None and args.model is not None:
            raise ConfigError("name the model once: MODEL or -m MODEL")
        args.model = args.model or args.model_file
        settings = from_options(ServeSettings, args, SERVE_OPTIONS)
        predictor = predictor_from_args(args)
        teacher, no_teacher = teaching(args, predictor)
    except SpeechRNNError as exc:
        return _error(str(exc))
    announce(predictor)
    try:
        listener = _listen(settings.host, settings.port)
    except OSError as exc:
        return _error(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc})")

    import uvicorn

    from speechrnn.inference.serve.app import create_app

    assert predictor.source is not None
    limit = round(settings.max_upload_mb * 2**20)
    app = create_app(
        predictor, predictor.source.path, limit, teacher=teacher, no_teacher=no_teacher
    )
    host, port = listener.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"speechrnn-serve: {predictor.source.description} at http://{shown_host}:{port}/",
        flush=True,
    )
    if ipaddress.ip_address(host).is_loopback:
        print("listening on this computer only (--host 0.0.0.0 serves the network)", flush=True)
    else:
        print("listening on the network: whoever reaches this port can use the model", flush=True)
    uvicorn.Server(server_config(app)).run(sockets=[listener])
    return ExitCode.OK


def teaching(args: argparse.Namespace, predictor: Predictor) -> tuple[Teacher | None, str]:
    """The teacher of the page's Teach a word panel, or None and why there is none."""
    source = predictor.source
    assert source is not None
    if args.no_teach:
        return None, "teaching is off (speechrnn-serve --no-teach)"
    if args.weights is not None:
        weights = Path(args.weights)
        if not weights.is_file():
            raise ConfigError(f"--weights {shown(str(weights))}: no such checkpoint")
    elif source.released:
        weights = find_release().weights
    elif source.path.suffix.lower() in CHECKPOINT_SUFFIXES:
        weights = source.path
    else:
        return None, "teaching needs the model's float weights: speechrnn-serve --weights CKPT"
    words = Path(args.words_dir) if args.words_dir else cache_root(DataConfig()) / "words"
    return word_teacher(weights, words), ""


def word_teacher(weights: Path, folder: Path) -> Teacher:
    """Teaches words one after another, each to the model the last one made; torch is loaded
    when the first word is taught, not before."""
    current = [weights]

    def teach(word: str, takes: Takes) -> Taught:
        from speechrnn.training.enroll import enroll, folder_for

        taught = enroll(current[-1], word, takes, folder_for(folder, word))
        current.append(taught.checkpoint)
        return taught

    return teach


def server_config(app: Starlette) -> uvicorn.Config:
    """How speechrnn-serve runs `app`: uvicorn, warnings and errors logged (a client's bad text
    frame as one line), frames of at most WS_MAX_BYTES (larger: closed with 1009 by uvicorn)."""
    import uvicorn

    from speechrnn.inference.serve.stream import WS_MAX_BYTES

    config = uvicorn.Config(app, log_level="warning", ws="auto", ws_max_size=WS_MAX_BYTES)
    logging.getLogger("uvicorn.error").addFilter(_CLIENT_TEXT)  # after Config set up logging
    return config


class _ClientText(logging.Filter):
    """uvicorn logs a WebSocket text frame that is not UTF-8 (it closes it with 1007) as an error
    with its traceback: the client's fault, so a one-line warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UnicodeDecodeError):
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_CLIENT_TEXT = _ClientText()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host` (an IP address or a name) and `port`."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(address[:2], family=family)


def _error(message: str) -> int:
    error_line(message)
    return ExitCode.USAGE
