"""int8 ONNX models: onnxruntime's dynamic quantization of the LSTM weights, judged on clips."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speechrnn.console import quiet
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.inference.backends import OnnxBackend
from speechrnn.labels import SILENCE, UNKNOWN

if TYPE_CHECKING:
    import onnx

QUANTIZATIONS = ("int8",)
# onnxruntime quantizes LSTM only dynamically (its static QLinear/QDQ registries have no LSTM),
# so the recurrent weights, the bulk of the model, are int8 with activations quantized per call.
QUANTIZED_OPS = ["LSTM", "MatMul"]
METHOD = (
    "int8 dynamic (onnxruntime quantize_dynamic, QInt8 weights: LSTM, MatMul; "
    "other float constants stored as float16)"
)
HALF_MIN_ELEMENTS = 256  # float constants this large are stored as float16 and cast back on load


@dataclass(frozen=True)
class Comparison:
    """How an int8 model differs from its float model on the same clips."""

    clips: int
    agreement: float  # share of clips with the same top-1 label
    max_abs_diff: float
    float_accuracy: float | None = None  # on labelled held-out clips, when given
    int8_accuracy: float | None = None


def quantize_int8(float_path: Path, out: Path) -> Path:
    """Write the int8 version of the float ONNX model `float_path` to `out`.

    The graph is constant-folded first (a bidirectional LSTM's weights are exported as
    Slice/Concat of its two directions, which the quantizer skips unless folded). The MFCC
    front end (mel filterbank and DCT matrix products) stays float: it is tiny and feeds
    everything after it. The float constants left (filterbank, stem, biases) are stored as
    float16 and cast back to float32 when onnxruntime folds the graph on load.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folded = out.with_name(f".{out.name}.folded")
    try:
        _fold_constants(float_path, folded)
        model = onnx.load(str(folded))
        weights = {init.name for init in model.graph.initializer}
        front_end = [
            node.name
            for node in model.graph.node
            if node.op_type == "MatMul" and any(".mfcc." in i for i in node.input if i in weights)
        ]
        with quiet():
            quantize_dynamic(
                str(folded),
                str(out),
                op_types_to_quantize=QUANTIZED_OPS,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=front_end,
            )
    finally:
        folded.unlink(missing_ok=True)
    quantized = onnx.load(str(out))
    _store_half(quantized.graph)
    del quantized.metadata_props[:]
    for prop in onnx.load(str(float_path)).metadata_props:
        quantized.metadata_props.add().CopyFrom(prop)
    entry = quantized.metadata_props.add()
    entry.key, entry.value = "quantization", METHOD
    onnx.save_model(quantized, str(out))
    return out


def _store_half(graph: onnx.GraphProto) -> None:
    """Store every large float32 initializer as float16 behind a Cast to float32 of its name."""
    import onnx
    from onnx import numpy_helper

    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < HALF_MIN_ELEMENTS:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), f"{name}_float16"))
        casts.append(
            onnx.helper.make_node(
                "Cast", [init.name], [name], name=f"{name}_to_float", to=onnx.TensorProto.FLOAT
            )
        )
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)


def _fold_constants(path: Path, out: Path) -> None:
    """onnxruntime's basic (portable) graph optimizations, constant folding among them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 4
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def heldout_clips(root: str, labels: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16000) float32 clips and (n,) targets from the test split of a GSC-layout corpus,
    mapped to `labels` as speechrnn-eval does; at most `limit`, evenly spread."""
    words = tuple(w for w in labels if w not in (SILENCE, UNKNOWN))
    clips = load_split(DataConfig(root=root, words=words), "test", labels)
    rows = np.linspace(0, len(clips) - 1, min(limit, len(clips))).round().astype(np.int64)
    waves = np.asarray(clips.waves[rows], np.float32) / 32768.0  # (n, T)
    return waves, clips.targets[rows]


def compare(
    float_model: OnnxBackend,
    int8_model: OnnxBackend,
    clips: np.ndarray,
    targets: np.ndarray | None = None,
    batch_size: int = 256,
) -> Comparison:
    """Top-1 agreement and largest probability difference; accuracies on clips whose target is
    a label index (targets < 0 mark unlabelled clips such as probes)."""
    a = _probabilities(float_model, clips, batch_size)  # (N, C)
    b = _probabilities(int8_model, clips, batch_size)  # (N, C)
    top_a, top_b = a.argmax(axis=1), b.argmax(axis=1)  # (N,) each
    accuracy: tuple[float | None, float | None] = (None, None)
    labelled = np.flatnonzero(targets >= 0) if targets is not None else np.zeros(0, np.int64)
    if targets is not None and labelled.size:
        truth = targets[labelled]
        accuracy = (
            float((top_a[labelled] == truth).mean()),
            float((top_b[labelled] == truth).mean()),
        )
    return Comparison(
        len(clips), float((top_a == top_b).mean()), float(np.abs(a - b).max()), *accuracy
    )


def _probabilities(model: OnnxBackend, clips: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [model(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]
    )


def size_mb(path: str | os.PathLike[str]) -> float:
    return Path(path).stat().st_size / 1e6
