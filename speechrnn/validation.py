"""Model files checked field by field (metadata, labels, tensor names and shapes) before use."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from speechrnn.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # torch-free at import: the ONNX backend checks labels without torch
    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig

MAX_LABELS = 1000
MAX_LABEL_CHARS = 100
MAX_PARAMETERS = 50_000_000  # about 200 MB of float32 weights; the default model has ~0.6 M
# Sane upper bounds per field; the dataclasses check the lower bounds and the relations.
_LIMITS: dict[str, float] = {
    "sample_rate": 16_000, "n_mfcc": 256, "n_mels": 256, "n_fft": 8192, "win_ms": 500.0,
    "hop_ms": 500.0, "f_min": 96_000.0, "f_max": 96_000.0, "top_db": 500.0, "scale_db": 1000.0,
    "hidden_size": 4096, "num_layers": 16, "proj_size": 4096, "freq_masks": 64,
    "freq_mask_width": 256, "time_masks": 64, "time_mask_width": 1000, "freq_warp": 1.0,
    "frame_stack": 64, "conv_channels": 512, "conv_stride": 16, "dropout": 1.0,
}  # fmt: skip


def check_labels(labels: object, where: str) -> list[str]:
    """A list of 2..MAX_LABELS distinct, non-empty, printable strings; CheckpointError else."""
    if not isinstance(labels, list | tuple) or not all(isinstance(x, str) for x in labels):
        raise CheckpointError(f"{where}: labels must be a list of strings, got {_kind(labels)}")
    if not 2 <= len(labels) <= MAX_LABELS:
        raise CheckpointError(f"{where}: needs 2 to {MAX_LABELS} labels, got {len(labels)}")
    bad = next(
        (x for x in labels if not x or len(x) > MAX_LABEL_CHARS or not x.isprintable()), None
    )
    if bad is not None:
        raise CheckpointError(
            f"{where}: label {bad[:40]!r} is empty, longer than {MAX_LABEL_CHARS} characters "
            "or not printable"
        )
    if len(set(labels)) != len(labels):
        raise CheckpointError(f"{where}: labels repeat ({sorted(labels)[:10]})")
    return list(labels)


def check_metadata(meta: object, where: str) -> tuple[list[str], FeatureConfig, ModelConfig]:
    """Labels and settings of a checkpoint, every field typed and bounded; nothing is built."""
    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig

    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: model settings must be a mapping, got {_kind(meta)}")
    labels = check_labels(meta.get("labels"), where)
    features = _settings(FeatureConfig, meta.get("features"), "features", where)
    model = _settings(ModelConfig, meta.get("model"), "model", where)
    count = parameter_count(features, model, len(labels))
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: the declared model has {count:,} parameters, more than {MAX_PARAMETERS:,}; "
            "refusing to build it"
        )
    return labels, features, model


def parameter_count(features: FeatureConfig, model: ModelConfig, classes: int) -> int:
    """The trainable parameters of the declared architecture: built on the meta device, so
    nothing is allocated and the count cannot drift from the model's own layers."""
    import torch

    from speechrnn.model import StackedLSTMClassifier

    labels = [f"class{i}" for i in range(classes)]
    with torch.device("meta"):
        built = StackedLSTMClassifier(labels, features, model)
    return sum(p.numel() for p in built.parameters() if p.requires_grad)


def check_state(state: object, where: str) -> dict[str, Any]:
    """A mapping of names to numeric tensors, the floating ones finite; CheckpointError else.

    Integer tensors are buffers (BatchNorm's num_batches_tracked); `check_shapes` checks that
    the architecture declares each one so.
    """
    import torch

    if not isinstance(state, dict):
        raise CheckpointError(
            f"{where}: state_dict must be a mapping of tensors, got {_kind(state)}"
        )
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{where}: state_dict entry {str(name)[:60]!r} is not a tensor")
        if tensor.is_complex() or tensor.dtype == torch.bool:
            raise CheckpointError(f"{where}: tensor {name} has dtype {tensor.dtype}, not a number")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: tensor {name} holds NaN or infinite values")
    return state


def check_shapes(state: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Tensor names, shapes and dtype kinds against the declared architecture's (`expected`)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {', '.join(missing[:3])}" if missing else ""
        extra = f"unexpected {', '.join(unexpected[:3])}" if unexpected else ""
        raise CheckpointError(
            f"{where}: weights do not match the declared architecture "
            f"({'; '.join(x for x in (what, extra) if x)})"
        )
    for name, want in expected.items():
        if tuple(state[name].shape) != tuple(want.shape):
            raise CheckpointError(
                f"{where}: tensor {name} has shape {tuple(state[name].shape)}, the declared "
                f"architecture needs {tuple(want.shape)}"
            )
        if state[name].is_floating_point() != want.is_floating_point():
            kind = "float" if want.is_floating_point() else "integer"
            dtype = state[name].dtype
            raise CheckpointError(f"{where}: tensor {name} has dtype {dtype}, not {kind}")


def _settings(kind: type, value: object, section: str, where: str) -> Any:
    """A FeatureConfig or ModelConfig from a mapping, each field's type and upper bound checked."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: {section} settings must be a mapping, got {_kind(value)}")
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise CheckpointError(f"{where}: unknown {section} setting(s) {', '.join(unknown[:5])}")
    for name, item in value.items():
        default = getattr(kind(), name)
        if not _same_type(item, default):
            raise CheckpointError(
                f"{where}: {section}.{name} must be {type(default).__name__}, got {item!r:.60}"
            )
        limit = _LIMITS.get(name, math.inf)
        if isinstance(item, int | float) and not (math.isfinite(item) and item <= limit):
            raise CheckpointError(
                f"{where}: {section}.{name} = {item!r:.30} is out of range (at most {limit:g})"
            )
    try:
        return kind(**value)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: invalid settings ({exc})") from None


def _same_type(value: object, default: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return type(value) is type(default)


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
