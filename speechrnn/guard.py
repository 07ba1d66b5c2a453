"""Console-script guard: an unexpected exception becomes one `error: internal error:` line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

DEBUG_ENV = "SPEECHRNN_DEBUG"  # set to 1 for the full traceback instead of the one line
INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in speechrnn (or a library), not the user's input
INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")


def guarded(main: Callable[P, R]) -> Callable[P, R]:
    """Wrap a console script's `main`: no traceback reaches the user unless DEBUG_ENV is set."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            _line("interrupted", INTERRUPTED)
        except Exception as exc:
            internal_error(exc)

    return run


def internal_error(exc: Exception) -> NoReturn:
    """Exit INTERNAL_ERROR with one line naming `exc`; re-raise it when DEBUG_ENV is set."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        raise exc
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    _line(
        f"internal error: {type(exc).__name__}{': ' if text else ''}{text} "
        f"(a bug; run again with {DEBUG_ENV}=1 for the full traceback)",
        INTERNAL_ERROR,
    )


def _line(message: str, code: int) -> NoReturn:
    try:
        print(f"error: {message}", file=sys.stderr, flush=True)
    finally:
        sys.exit(code)
