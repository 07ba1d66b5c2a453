"""Model backends behind one call, (B, 16000) float32 audio -> (B, classes) probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from speechrnn.audio import CLIP_SAMPLES
from speechrnn.errors import CheckpointError
from speechrnn.metadata import ONNX_FORMAT, from_onnx_properties
from speechrnn.validation import check_labels

MAX_ONNX_BYTES = 256 * 2**20  # checked before loading; 50 M float32 weights take 200 MB


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

    def __init__(self, path: Path, session: Any = None) -> None:
        self.session = open_session(path) if session is None else session
        self.labels = _check_onnx(self.session, path)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (probs,) = self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})
        return probs  # (B, classes)


def open_session(path: Path) -> Any:
    """An onnxruntime session of the file at `path` (CPU), its size checked before loading;
    CheckpointError when it is missing, too large or not ONNX."""
    import onnxruntime as ort

    if not path.is_file():
        raise CheckpointError(f"{path}: model not found")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only; problems are reported as one line
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise CheckpointError(
            f"{path}: refused to load: {size:,} bytes, more than {MAX_ONNX_BYTES:,}"
        )
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors derive from Exception only
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable ONNX model ({reason})") from None


def _check_onnx(session: Any, path: Path) -> list[str]:
    """The labels of a speechrnn ONNX model, its metadata and input/output signature checked."""
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("format") != ONNX_FORMAT:
        raise CheckpointError(
            f"{path}: not a speechrnn ONNX model (format {meta.get('format', 'missing')!r:.40}, "
            f"expected {ONNX_FORMAT})"
        )
    try:
        labels = check_labels(from_onnx_properties(meta).get("labels"), str(path))
        clip = int(meta.get("clip_samples", ""))
    except (ValueError, TypeError, RecursionError):
        raise CheckpointError(
            f"{path}: unreadable labels or clip_samples in its metadata"
        ) from None
    if clip != CLIP_SAMPLES:
        raise CheckpointError(f"{path}: declares {clip}-sample input, expected {CLIP_SAMPLES}")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise CheckpointError(
            f"{path}: has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1"
        )
    signature = (
        (inputs[0], "input", CLIP_SAMPLES),
        (outputs[0], "output", len(labels)),
    )
    for arg, role, size in signature:
        shape = list(arg.shape or [])
        if arg.type != "tensor(float)" or len(shape) != 2 or shape[1] != size:
            raise CheckpointError(
                f"{path}: {role} {arg.name!r:.40} is {arg.type} {shape}, expected "
                f"tensor(float) [batch, {size}]"
            )
    return labels
