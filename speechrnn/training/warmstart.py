"""Warm start: a new run begins from another checkpoint's weights (transfer, fine-tuning)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from speechrnn.checkpoint import RUN_CHECKPOINT, changed_settings, load_checkpoint, run_checkpoint
from speechrnn.errors import ConfigError
from speechrnn.model import StackedLSTMClassifier

HEAD = ("head.weight", "head.bias")  # one row per label: copied by label name


def warm_start_checkpoint(entry: str) -> Path:
    """`init_from`: a checkpoint file or a run dir (its checkpoints/last.ckpt)."""
    found = run_checkpoint(entry)
    if found is None:
        path = Path(entry).expanduser()
        missing = path / RUN_CHECKPOINT if path.is_dir() else path
        raise ConfigError(f"init_from: {missing} does not exist (a checkpoint or a run dir)")
    return found


def warm_start(model: StackedLSTMClassifier, path: Path) -> str:
    """Copy `path`'s weights into `model` (see `copy_weights`); returns one line saying what was
    taken. ConfigError when they cannot agree."""
    taken = copy_weights(model, load_checkpoint(path), f"init_from: {path}")
    return f"warm start from {path}: {taken}"


def copy_weights(model: StackedLSTMClassifier, source: StackedLSTMClassifier, where: str) -> str:
    """Copy `source`'s weights into `model`: every tensor but the head must match by name and
    shape; the head's rows are copied for the labels both have, the others keep their fresh
    initialisation. Returns what was taken; ConfigError (naming `where`) when they cannot agree."""
    changed = changed_settings(asdict(source.feature_config), asdict(model.feature_config))
    if changed:
        raise ConfigError(
            f"{where} was trained on other features ({', '.join(changed)} differ); "
            "its weights fit only the front end they were trained with"
        )
    theirs, ours = source.state_dict(), model.state_dict()
    body = [k for k in ours if k not in HEAD]
    wrong = [k for k in body if k not in theirs or theirs[k].shape != ours[k].shape]
    if wrong:
        raise ConfigError(
            f"{where} has another architecture ({', '.join(wrong[:3])} differ): "
            "set model.* as it was trained"
        )
    index = {label: j for j, label in enumerate(source.labels)}
    rows = [(i, index[label]) for i, label in enumerate(model.labels) if label in index]
    if not rows:
        raise ConfigError(f"{where} has none of this run's labels")
    with torch.no_grad():
        for name in body:
            ours[name].copy_(theirs[name])
        mine, theirs_rows = zip(*rows, strict=True)
        for name in HEAD:
            ours[name][list(mine)] = theirs[name][list(theirs_rows)]
    new = [label for label in model.labels if label not in index]
    fresh = f"; new: {', '.join(new)}" if new else ""
    return f"{len(rows)} of {len(model.labels)} labels' head rows{fresh}"
