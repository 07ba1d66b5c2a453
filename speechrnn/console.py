"""The console: the one `error:` line, the internal-error guard, and the progress bars."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

from speechrnn.errors import ExitCode

if TYPE_CHECKING:
    from rich.progress import Progress


DEBUG_ENV = "SPEECHRNN_DEBUG"  # set to 1 for the full traceback instead of the one line

P = ParamSpec("P")
R = TypeVar("R")


def shown(text: str) -> str:
    """`text` with control characters (newlines in file names) escaped: one printable line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def error_line(message: str) -> None:
    """Print `error: <message>` on stderr, on one line: how every command reports a problem."""
    print(f"error: {shown(message)}", file=sys.stderr, flush=True)


def fail(message: str, code: int = ExitCode.FAILED) -> NoReturn:
    """Print one error line on stderr and exit non-zero (even when stderr is gone)."""
    try:
        error_line(message)
    finally:
        sys.exit(code)


class Terminated(BaseException):
    """SIGTERM raised in the main thread, so `finally` blocks clean up before the exit (a
    BaseException, like KeyboardInterrupt: `except Exception` does not swallow it)."""


def guarded(main: Callable[P, R]) -> Callable[P, R]:
    """Wrap a console script's `main`: no traceback reaches the user unless DEBUG_ENV is set;
    Ctrl-C exits 130 and SIGTERM 143, each with one line."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with _sigterm_raises():
                return main(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted", ExitCode.INTERRUPTED)
        except Terminated:
            fail("terminated (SIGTERM)", ExitCode.TERMINATED)
        except Exception as exc:
            internal_error(exc)

    return run


# OS errors that are the machine's state, not a bug: the disk, permissions, a missing device.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EMFILE}
)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def internal_error(exc: Exception) -> NoReturn:
    """Exit ExitCode.INTERNAL with one line naming `exc`; re-raise it when DEBUG_ENV is set.
    An OS error of the environment (a full or read-only disk, permissions) exits FAILED instead."""
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", ExitCode.FAILED)
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        raise exc
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    fail(
        f"internal error: {type(exc).__name__}{': ' if text else ''}{text} "
        f"(a bug; run again with {DEBUG_ENV}=1 for the full traceback)",
        ExitCode.INTERNAL,
    )


def one_line(exc: BaseException) -> str:
    """An exception's message, with its cause, folded onto one line."""
    parts = [str(exc)]
    if exc.__cause__ is not None and str(exc.__cause__) not in parts[0]:
        parts.append(str(exc.__cause__))
    lines = [ln.strip() for part in parts for ln in part.splitlines()]
    cut = next((i for i, ln in enumerate(lines) if ln.startswith("Config search path")), None)
    noise = ("full_key:", "object_type=", "See https")
    kept = [ln for ln in lines[:cut] if ln and not ln.startswith(noise)]
    return " ".join(kept) or type(exc).__name__


def progress(unit: str = "items", enabled: bool = True, transient: bool = False) -> Progress:
    """A rich progress display counting `items` (done/total) or `bytes` (size, rate)."""
    from rich import progress as rp

    amount = (
        (rp.DownloadColumn(), rp.TransferSpeedColumn())
        if unit == "bytes"
        else (rp.MofNCompleteColumn(), rp.TimeElapsedColumn())
    )
    columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), *amount)
    return rp.Progress(*columns, rp.TimeRemainingColumn(), disable=not enabled, transient=transient)


@contextmanager
def counting(
    label: str, total: int, enabled: bool = True, transient: bool = False
) -> Iterator[Callable[[int], None]]:
    """A bar of `total` items while the block runs; yields `advance(n)`."""
    with progress("items", enabled, transient) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class ByteBar:
    """A progress bar in bytes (done/total, rate, time left), shown once the total is set."""

    def __init__(self, description: str, enabled: bool = True, total: int | None = None) -> None:
        self._progress = progress("bytes", enabled)
        self._task = self._progress.add_task(description, total=total)
        self._total = total

    def __enter__(self) -> ByteBar:
        if self._total is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress.live.is_started:
            self._progress.stop()

    def reset(self, total: int | None, completed: int = 0) -> None:
        """Start counting again (a new response): `completed` of `total` bytes are done."""
        self._progress.reset(self._task, total=total, completed=completed)
        self._progress.start()

    def advance(self, size: int) -> None:
        self._progress.advance(self._task, size)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute the exporter's progress prints, warnings and log records (Hydra logs INFO)."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)
