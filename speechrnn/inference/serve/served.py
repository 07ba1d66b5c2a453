"""The model speechrnn-serve answers with, its /api/model summary, and the swap to a new one."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from speechrnn.data.files import sha256_file
from speechrnn.inference.listening import open_model
from speechrnn.inference.predict import ModelSource, Predictor


def describe(predictor: Predictor, model: Path, max_upload_bytes: int) -> dict[str, object]:
    """What GET /api/model answers: labels, settings, model kind and checksum."""
    source, listening = predictor.source, predictor.listening
    return {
        "model": model.name,
        "description": source.description if source else model.name,
        "released": bool(source and source.released),
        "kind": "onnx" if model.suffix.lower() == ".onnx" else "checkpoint",
        "listener": predictor.listening is not None,
        "sha256": sha256_file(model, progress=False),
        "labels": predictor.labels,
        "settings": {
            "top_k": predictor.top_k,
            "threshold": predictor.threshold,
            "max_seconds": predictor.max_seconds,
            "max_upload_mb": round(max_upload_bytes / 2**20, 3),
            "stream": asdict(predictor.stream),
            "detector": listening.point.to_metadata() if listening else None,
        },
    }


class Served:
    """The model the app answers with: requests and streams that start after `swap` get the
    new one, those under way finish with the old."""

    def __init__(self, predictor: Predictor, model: Path, max_upload_bytes: int) -> None:
        self.max_upload_bytes = max_upload_bytes
        self.swap(predictor, model)

    def swap(self, predictor: Predictor, model: Path) -> None:
        summary = describe(predictor, model, self.max_upload_bytes)
        self.predictor, self.model, self.summary = predictor, model, summary

    def load(self, path: Path, description: str) -> None:
        """Serve the model file at `path` with the current decision settings."""
        old = self.predictor
        device = str(getattr(old.backend, "device", "cpu"))
        source = ModelSource(path, description)
        backend, listening = open_model(path, device, old.stream)
        predictor = Predictor(
            backend, old.top_k, old.threshold, old.stream, old.max_seconds, source, listening
        )
        self.swap(predictor, path)
