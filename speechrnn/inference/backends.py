"""Model backends behind one call, (B, 16000) float32 audio -> (B, classes) probabilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from speechrnn.audio import CLIP_SAMPLES
from speechrnn.errors import CheckpointError

ONNX_FORMAT = "speechrnn-onnx/1"


class Backend(Protocol):
    """What a predictor needs from a model: its labels and batched probabilities."""

    labels: list[str]

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def open_backend(path: str | Path, device: str = "cpu") -> Backend:
    """An ONNX backend for `.onnx` files, the torch backend for checkpoints (.ckpt, .pt, ...)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return OnnxBackend(path)
    return TorchBackend(path, device)


class TorchBackend:
    """A checkpoint run eagerly by torch; imports neither Lightning nor Hydra."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import torch

        from speechrnn.checkpoint import load_checkpoint, resolve_device

        self.device = resolve_device(device)
        self.model = load_checkpoint(path, self.device)
        self.labels = list(self.model.labels)
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            wave = self._torch.from_numpy(batch).to(self.device)  # (B, T)
            return self.model(wave).softmax(dim=-1).float().cpu().numpy()  # (B, classes)


class OnnxBackend:
    """An exported model run by onnxruntime: no torch import at all."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise CheckpointError(f"{path}: model not found")
        options = ort.SessionOptions()
        options.log_severity_level = 4  # fatal only; problems are reported as one line
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{path}: not a readable ONNX model ({reason})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            labels, clip = json.loads(meta["labels"]), int(meta["clip_samples"])
        except (KeyError, ValueError, TypeError):
            raise CheckpointError(
                f"{path}: not a speechrnn ONNX model (no labels in its metadata)"
            ) from None
        if meta.get("format") != ONNX_FORMAT or clip != CLIP_SAMPLES:
            raise CheckpointError(
                f"{path}: unsupported ONNX model ({meta.get('format')!r}, {clip}-sample input); "
                f"expected {ONNX_FORMAT} with {CLIP_SAMPLES}-sample input"
            )
        self.labels = [str(label) for label in labels]
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (probs,) = self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})
        return probs  # (B, classes)
