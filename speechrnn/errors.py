"""User-facing errors: each carries one line that the command-line tools print before exiting."""

from __future__ import annotations

from enum import IntEnum


class SpeechRNNError(Exception):
    """A problem with the user's input or environment, reported as one line, no traceback."""


class ConfigError(SpeechRNNError):
    """A configuration value is missing, of the wrong type or out of range."""


class AudioError(SpeechRNNError):
    """An audio file cannot be decoded or is unusable."""


class DataError(SpeechRNNError):
    """A corpus, archive or cache cannot be used."""


class CheckpointError(SpeechRNNError):
    """A model file is missing, corrupt or unsafe."""


class ExportError(SpeechRNNError):
    """A model cannot be exported faithfully (the exported graph disagrees with the eager model)."""


class ExitCode(IntEnum):
    """Every command's exit status (docs/robustness.md)."""

    OK = 0
    FAILED = 1  # bad input or environment: an audio file, a corpus, the disk, the network
    USAGE = 2  # bad arguments or settings, or a missing, corrupt, unsafe or invalid model file
    INTERNAL = 70  # EX_SOFTWARE: a bug in speechrnn (or a library), not the user's input
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
    TERMINATED = 143  # SIGTERM (kill, timeout, a scheduler's preemption): 128 + 15


def exit_code(exc: SpeechRNNError) -> ExitCode:
    """The status a command exits with for a user-facing error."""
    if isinstance(exc, Stopped):
        return exc.code
    return ExitCode.USAGE if isinstance(exc, ConfigError | CheckpointError) else ExitCode.FAILED


class Stopped(SpeechRNNError):
    """A run stopped by a signal, its resumable state saved; the exit status says which signal."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code
