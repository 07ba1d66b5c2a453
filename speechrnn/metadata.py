"""The one layout of a model's metadata: what checkpoints and ONNX files carry besides weights."""

from __future__ import annotations

import json
from typing import Any

CHECKPOINT_FORMAT = "speechrnn-checkpoint/1"
ONNX_FORMAT = "speechrnn-onnx/1"
DETECTOR_KEY = "detector"  # a listener's operating point: checkpoint mapping, ONNX JSON
FIELDS = ("labels", "features", "model")  # every model has these; plain JSON values


def model_metadata(
    labels: list[str], features: dict[str, Any], model: dict[str, Any]
) -> dict[str, Any]:
    """The checkpoint layout: format, labels, feature and model settings (plain values)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "labels": list(labels),
        "features": features,
        "model": model,
    }


def onnx_properties(meta: dict[str, Any], **extra: str) -> dict[str, str]:
    """An ONNX file's metadata_props for a model's metadata: each field as JSON, the format
    replaced by ONNX_FORMAT, plus `extra` strings (sample rate, source, version)."""
    fields = {key: json.dumps(value) for key, value in meta.items() if key != "format"}
    return {"format": ONNX_FORMAT, **fields, **extra}


def from_onnx_properties(props: dict[str, str]) -> dict[str, Any]:
    """The model metadata an ONNX file's metadata_props hold (the inverse of onnx_properties for
    FIELDS); ValueError or TypeError when a field is not JSON."""
    return {
        "format": props.get("format"),
        **{key: json.loads(props[key]) for key in FIELDS if key in props},
    }
