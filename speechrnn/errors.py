"""User-facing errors: each carries one line that the command-line tools print before exiting."""

from __future__ import annotations


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
