"""Checkpoints: the device to load on, and safe loading of standalone or Lightning checkpoints."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from speechrnn.errors import CheckpointError, ConfigError
from speechrnn.model import FORMAT, StackedLSTMClassifier


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
    """Rebuild a model in eval mode from a standalone or Lightning checkpoint, safely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
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
    meta, state = _split_checkpoint(raw, path)
    model = StackedLSTMClassifier.from_metadata(meta)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not match the saved settings ({first})"
        ) from None
    return model.to(device).eval()


def _split_checkpoint(raw: object, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, model state dict) of a standalone or a Lightning checkpoint."""
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return raw, raw["state_dict"]
    if isinstance(raw, dict) and isinstance(raw.get("speechrnn"), dict) and "state_dict" in raw:
        state = {
            k.removeprefix("model."): v
            for k, v in raw["state_dict"].items()
            if k.startswith("model.")
        }
        return raw["speechrnn"], state
    raise CheckpointError(
        f"{path}: not a speechrnn checkpoint (no labels or model settings inside)"
    )
