"""What a run writes, so that nothing is lost or half-written: checkpoints, the CSV log, JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from speechrnn.data.files import make_dir, write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, fsynced and renamed: a full or read-only disk is
    one DataError, and no truncated file ever stands under a checkpoint's name."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        target = Path(path)
        make_dir(target.parent)
        write_atomically(target, lambda handle: torch.save(checkpoint, handle))


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger that, resuming a run, keeps the rows its file already holds up to
    the resumed step (Lightning's own starts the file afresh and loses them)."""

    def __init__(self, save_dir: Any, *args: Any, resume_step: int | None = None, **kwargs: Any):
        super().__init__(save_dir, *args, **kwargs)
        self.resume_step = resume_step

    @property
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        kept = _rows_until(Path(self.log_dir) / "metrics.csv", self.resume_step)
        writer = super().experiment  # removes the old file; it is written again with `kept`
        if kept and isinstance(writer, ExperimentWriter):  # not a rank > 0's dummy
            writer.metrics[:0] = kept
            writer.metrics_keys = sorted({key for row in kept for key in row})
        return writer


def _rows_until(path: Path, step: int | None) -> list[dict[str, Any]]:
    """The rows of a CSV log whose step is at most `step` (None: none), values as numbers."""
    if step is None or not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = [
            {k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)
        ]
    return [
        {k: _number(v) for k, v in row.items()} for row in rows if int(float(row["step"])) <= step
    ]


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def write_json(path: Path, content: Any) -> None:
    """`content` as indented JSON in `path`, atomically."""
    text = (json.dumps(content, indent=2) + "\n").encode()
    write_atomically(path, lambda handle: handle.write(text))
