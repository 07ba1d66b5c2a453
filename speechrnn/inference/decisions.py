"""Backend-agnostic inference in numpy: clip decisions, sliding windows, smoothing, detections."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from speechrnn.labels import UNKNOWN

CLIP_SECONDS = 1.25  # audio up to this long is one clip; longer audio is scanned


@dataclass(frozen=True)
class Detection:
    """A keyword found in long audio: label, start/end in seconds, smoothed posterior."""

    label: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Prediction:
    """One file's answer, as the CLI prints it and `Predictor.predict` returns it."""

    file: str
    label: str
    probability: float
    top_k: list[tuple[str, float]]
    duration: float
    detections: list[Detection] | None = field(default=None)  # None: a clip, not scanned

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["top_k"] = [{"label": lab, "probability": p} for lab, p in self.top_k]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        line = f"{self.file}  {self.label}  {self.probability:.3f}"
        if len(self.top_k) > 1:
            line += "  [" + ", ".join(f"{lab} {p:.3f}" for lab, p in self.top_k) + "]"
        if self.detections is None:
            return line
        lines = [f"{line}  ({self.duration:.2f} s, {len(self.detections)} detections)"]
        lines += [
            f"  {d.start:8.2f} - {d.end:8.2f} s  {d.label}  {d.probability:.3f}"
            for d in self.detections
        ]
        return "\n".join(lines)


def decide(
    probs: np.ndarray, labels: list[str], top_k: int = 1, threshold: float = 0.0
) -> tuple[str, float, list[tuple[str, float]]]:
    """(label, probability, top-k) of one (classes,) posterior; `_unknown_` below threshold."""
    order = np.argsort(-probs, kind="stable")[: max(1, top_k)]
    best = int(order[0])
    label = labels[best] if probs[best] >= threshold else UNKNOWN
    return label, float(probs[best]), [(labels[i], float(probs[i])) for i in order]
