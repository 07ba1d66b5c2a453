"""Checkpoints: the device to load on, and safe loading of standalone or Lightning checkpoints."""

from __future__ import annotations

import os
import pickle
import re
import struct
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from speechrnn.errors import CheckpointError, ConfigError
from speechrnn.metadata import CHECKPOINT_FORMAT
from speechrnn.model import StackedLSTMClassifier
from speechrnn.validation import check_metadata, check_shapes, check_state

RUN_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # a training run's final weights
# What a checkpoint may cost to load: 1 GiB holds the largest model validation allows (200 MB of
# weights) with its optimizer state and EMA copy; torch stores its members uncompressed (ratio 1).
MAX_CHECKPOINT_BYTES = 2**30  # the file, and the bytes its zip members declare they inflate to
MAX_INFLATION = 100  # declared bytes per byte of file
MAX_ZIP_DIRECTORY = 4 * 2**20  # bytes of zip central directory (a checkpoint's is a few kB)
_END = struct.Struct("<4s4H2LH")  # zip end of central directory record
_END64 = struct.Struct("<4sQ2H2L4Q")  # its zip64 form, just before the 20-byte zip64 locator


def run_checkpoint(entry: str) -> Path | None:
    """`entry` itself when it is a file, else its checkpoints/last.ckpt; None when neither is."""
    path = Path(entry).expanduser()
    return next((p for p in (path, path / RUN_CHECKPOINT) if p.is_file()), None)


def changed_settings(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The keys of `wanted` whose values `saved` does not share, sorted."""
    return sorted(k for k in wanted if saved.get(k) != wanted[k])


def resolve_device(device: str) -> torch.device:
    """`auto` (the GPU when there is one), `cpu`, `cuda` or `cuda:N`; one-line errors."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but no CUDA GPU is available")
    return resolved


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> StackedLSTMClassifier:
    """Rebuild a model in eval mode from a standalone or Lightning checkpoint, safely.

    Every field of the settings, the labels and every tensor's name and shape are checked
    before the model is built; any failure is a CheckpointError naming it.
    """
    path = Path(path)
    meta, state = _split_checkpoint(read_checkpoint(path, device), path)
    labels, features, config = check_metadata(meta, str(path))
    state = check_state(state, str(path))
    model = StackedLSTMClassifier(labels, features, config)
    check_shapes(state, model.state_dict(), str(path))
    model.load_state_dict(state)
    return model.to(device).eval()


def read_checkpoint(path: Path, device: str | torch.device = "cpu") -> object:
    """`torch.load(weights_only=True)`; CheckpointError when missing, corrupt or unsafe."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        _check_size(path)
        raw = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"{path}: not a readable checkpoint (corrupt or not torch)"
            ) from None
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"it would import {unsafe.group(1)}" if unsafe else "it holds code or objects"
        raise CheckpointError(f"{path}: refused to load: {what}, not plain weights") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    return raw


def _check_size(path: Path) -> None:
    """Refuse, before anything is read into memory, a file larger than MAX_CHECKPOINT_BYTES or
    a zip (torch's format) whose members declare more, or an absurd compression ratio."""
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path}: refused to load: {size:,} bytes, more than {MAX_CHECKPOINT_BYTES:,}"
        )
    directory = _zip_directory_bytes(path)
    if directory is None:  # not a zip: torch reads it or says it cannot
        return
    if directory > MAX_ZIP_DIRECTORY:
        raise CheckpointError(
            f"{path}: refused to load: a zip directory of {directory:,} bytes, more than "
            f"{MAX_ZIP_DIRECTORY:,} (a checkpoint's lists a few tensors)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # never handed to torch's reader
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if inflated > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path}: refused to load: its members would inflate to {inflated:,} bytes, "
            f"more than {MAX_CHECKPOINT_BYTES:,}"
        )
    if inflated > MAX_INFLATION * max(size, 1):
        raise CheckpointError(
            f"{path}: refused to load: its members would inflate {size:,} bytes to "
            f"{inflated:,}, over {MAX_INFLATION} times as many (a zip bomb)"
        )


def _zip_directory_bytes(path: Path) -> int | None:
    """The size of a zip file's central directory, from its end record; None if not a zip."""
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        tail = min(size, _END.size + 0xFFFF + 20 + _END64.size)  # room for the longest comment
        file.seek(size - tail)
        data = file.read()
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < _END.size:
        return None
    directory = _END.unpack_from(data, at)[5]
    at64 = at - 20 - _END64.size
    if directory == 0xFFFFFFFF and at64 >= 0 and data[at64 : at64 + 4] == b"PK\x06\x06":
        directory = _END64.unpack_from(data, at64)[8]
    return directory


def check_resumable(path: Path, features: dict[str, Any], model: dict[str, Any]) -> None:
    """A checkpoint Lightning can resume or test with these settings; CheckpointError if not."""
    raw = read_checkpoint(path)
    if not (isinstance(raw, dict) and isinstance(raw.get("speechrnn"), dict)):
        raise CheckpointError(
            f"{path}: not a checkpoint written by speechrnn-train (a run's checkpoints/*.ckpt)"
        )
    if "loops" not in raw or "optimizer_states" not in raw:
        raise CheckpointError(f"{path}: a model without its training state; it cannot be resumed")
    meta, state = _split_checkpoint(raw, path)
    _, saved_features, saved_model = check_metadata(meta, str(path))
    check_state(state, str(path))
    for name, saved, wanted in (
        ("features", asdict(saved_features), features),
        ("model", asdict(saved_model), model),
    ):
        changed = changed_settings(saved, wanted)
        if changed:
            diff = ", ".join(
                f"{name}.{k}={saved.get(k)!r} there, {wanted[k]!r} here" for k in changed[:3]
            )
            raise CheckpointError(
                f"{path}: saved with other settings ({diff}); resume with the run's own"
            )


def _split_checkpoint(raw: object, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, model state dict) of a standalone or a Lightning checkpoint."""
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        return raw, raw.get("state_dict")
    if isinstance(raw, dict) and isinstance(raw.get("speechrnn"), dict) and "state_dict" in raw:
        weights = check_state(raw["state_dict"], str(path))
        state = {k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")}
        return raw["speechrnn"], state
    raise CheckpointError(
        f"{path}: not a speechrnn checkpoint (no labels or model settings inside)"
    )
