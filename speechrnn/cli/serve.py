"""speechrnn-serve: a local web page and JSON API that spot commands live from the microphone."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from pathlib import Path

from speechrnn.cli.predict import add_predictor_options, model_parser, predictor_from_args
from speechrnn.console import error_line, guarded
from speechrnn.errors import ConfigError, ExitCode, SpeechRNNError

DEFAULT_TOP_K = 3


def build_parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "speechrnn-serve",
        "Serve a model on a local web page (microphone, file drop) and a JSON API.",
        "Exit status: 0 stopped, 2 bad arguments, model or address, 130 interrupted.",
    )
    add = parser.add_argument
    add(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; "
        "0.0.0.0 serves everyone who can reach this port)",
    )
    add("--port", type=int, default=8000, help="port to listen on; 0 picks a free one")
    add("--max-upload-mb", type=float, default=20.0, metavar="MB", help="largest upload (20)")
    add_predictor_options(parser)
    parser.set_defaults(top_k=DEFAULT_TOP_K)
    return parser


@guarded
def main(argv: list[str] | None = None) -> int:
    """speechrnn-serve: load the model, listen, serve until interrupted."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as speechrnn-predict does
    try:
        if not 0 < args.max_upload_mb <= 4096:
            raise ConfigError(f"max-upload-mb must be in (0, 4096], got {args.max_upload_mb:g}")
        predictor = predictor_from_args(args)
    except SpeechRNNError as exc:
        return _error(str(exc))
    try:
        listener = _listen(args.host, args.port)
    except OSError as exc:
        return _error(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})")

    import uvicorn

    from speechrnn.inference.serve.app import create_app

    app = create_app(predictor, Path(args.model), round(args.max_upload_mb * 2**20))
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"speechrnn-serve: {args.model} at http://{shown}:{port}/", flush=True)
    if ipaddress.ip_address(host).is_loopback:
        print("listening on this computer only (--host 0.0.0.0 serves the network)", flush=True)
    else:
        print("listening on the network: whoever reaches this port can use the model", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="auto"))
    server.run(sockets=[listener])
    return ExitCode.OK


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host` (an IP address or a name) and `port`."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(address[:2], family=family)


def _error(message: str) -> int:
    error_line(message)
    return ExitCode.USAGE
