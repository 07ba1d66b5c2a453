"""int8 ONNX models: per-channel int8 weights for any graph, and their comparison with float."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speechrnn.inference.backends import OnnxBackend

if TYPE_CHECKING:
    import onnx

QUANTIZATIONS = ("int8",)
METHOD = "int8 weights per output channel, float activations and front end"
# The weight inputs of the layers stored as int8, and the axes that index an output channel.
WEIGHTS: dict[str, dict[int, tuple[int, ...]]] = {
    "LSTM": {1: (0, 1), 2: (0, 1)},  # W (dirs, gates * H, in), R (dirs, gates * H, H)
    "GRU": {1: (0, 1), 2: (0, 1)},
    "RNN": {1: (0, 1), 2: (0, 1)},
    "Conv": {1: (0,)},  # (out, in / groups, *kernel)
    "MatMul": {1: (-1,)},  # (in, out)
}
MIN_ELEMENTS = 256  # smaller constants are left as they are


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy on labelled clips: label -> (correct, clips); labels without clips absent."""

    per_label: dict[str, tuple[int, int]]

    @property
    def overall(self) -> float:
        correct, clips = np.sum(list(self.per_label.values()), axis=0)
        return float(correct / clips)


@dataclass(frozen=True)
class Comparison:
    """How an int8 model differs from its float model on the same clips."""

    clips: int
    agreement: float  # share of clips with the same top-1 label, one clip per call
    max_abs_diff: float  # largest |p_int8 - p_float|, one clip per call
    batch_diff: float  # largest |p(clip alone) - p(clip in a batch)| of the int8 model
    per_file: tuple[Accuracy, Accuracy] | None = None  # float, int8; on labelled clips
    batched: tuple[Accuracy, Accuracy] | None = None

    @property
    def accuracy_drop(self) -> float | None:
        """The larger accuracy loss of int8, one clip per call or batched."""
        if self.per_file is None or self.batched is None:
            return None
        return max(a.overall - b.overall for a, b in (self.per_file, self.batched))


def quantize_int8(float_path: Path, out: Path) -> Path:
    """Write the int8 version of the float ONNX model `float_path` (any graph) to `out`.

    After onnxruntime's basic constant folding, the weights of the LSTM/GRU/RNN, Conv, Gemm and
    MatMul nodes past the front end (every node the first LSTM, GRU, RNN, Conv or Gemm depends
    on) are stored as int8 with one float scale per output channel, behind a Cast and a Mul
    that onnxruntime folds when it loads the model: the int8 file runs as a float model whose
    weights are rounded, so a clip's output never depends on its batch mates or on calibration
    data. The float constants left are stored as float16 the same way.
    """
    import onnx

    folded = out.with_name(f".{out.name}.folded")
    try:
        _fold_constants(float_path, folded)
        model = onnx.load(str(folded))
    finally:
        folded.unlink(missing_ok=True)
    _store_half(model.graph, keep=_store_int8(model.graph))
    del model.metadata_props[:]
    for prop in onnx.load(str(float_path)).metadata_props:
        model.metadata_props.add().CopyFrom(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = "quantization", METHOD
    onnx.save_model(model, str(out))
    return out


def _store_int8(graph: onnx.GraphProto) -> set[str]:
    """Each large weight input of a layer past the front end becomes int8 times its scale;
    returns the names of the scales (float32)."""
    import onnx
    from onnx import numpy_helper

    weights = {init.name: init for init in graph.initializer}
    front = _front_end(graph)
    decoders: list[onnx.NodeProto] = []
    # Each weight is taken once, by its first reader: one the front end reads stays float.
    for position, node in enumerate(graph.node):
        for index, channel in _weight_axes(node).items():
            init = weights.pop(node.input[index], None) if index < len(node.input) else None
            if position in front or init is None or init.data_type != onnx.TensorProto.FLOAT:
                continue
            values = numpy_helper.to_array(init)  # a layer's weight, any shape
            if values.size < MIN_ELEMENTS:
                continue
            kept = {axis % values.ndim for axis in channel}
            axes = tuple(axis for axis in range(values.ndim) if axis not in kept)
            scale = np.abs(values).max(axis=axes, keepdims=True) / 127.0  # 1 on `axes`
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            codes = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
            decoders += _decode_on_load(graph, init, codes, scale)
    _prepend(graph, decoders)
    return {node.input[1] for node in decoders if node.op_type == "Mul"}


def _weight_axes(node: onnx.NodeProto) -> dict[int, tuple[int, ...]]:
    """Weight input index -> the axes that index its output channels, for the int8 layers."""
    if node.op_type == "Gemm":  # B is (in, out), or (out, in) with transB
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        return {1: (0,) if trans_b else (1,)}
    return WEIGHTS.get(node.op_type, {})


def _front_end(graph: onnx.GraphProto) -> set[int]:
    """Positions of the nodes the first LSTM, GRU, RNN, Conv or Gemm depends on (the features)."""
    layers = {"LSTM", "GRU", "RNN", "Conv", "Gemm"}
    nodes = list(graph.node)
    first = next((n for n in nodes if n.op_type in layers), None)
    producers = {output: i for i, node in enumerate(nodes) for output in node.output}
    found: set[int] = set()
    pending = list(first.input) if first is not None else []
    while pending:
        position = producers.get(pending.pop())
        if position is not None and position not in found:
            found.add(position)
            pending.extend(nodes[position].input)
    return found


def _store_half(graph: onnx.GraphProto, keep: set[str]) -> None:
    """Store every large float32 initializer but those in `keep` as float16 behind a Cast."""
    import onnx
    from onnx import numpy_helper

    decoders: list[onnx.NodeProto] = []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and init.name not in keep:
            values = numpy_helper.to_array(init)
            if values.size >= MIN_ELEMENTS:
                decoders += _decode_on_load(graph, init, values.astype(np.float16))
    _prepend(graph, decoders)


def _decode_on_load(
    graph: onnx.GraphProto,
    init: onnx.TensorProto,
    stored: np.ndarray,
    scale: np.ndarray | None = None,
) -> list[onnx.NodeProto]:
    """Store float initializer `init` as `stored` under a new name; returns the nodes that
    compute the old one from it (a Cast to float32, times `scale` if given), which
    onnxruntime folds back into a constant when it loads the model."""
    import onnx
    from onnx import numpy_helper

    name, kind = init.name, str(stored.dtype)
    init.CopyFrom(numpy_helper.from_array(stored, f"{name}_{kind}"))
    cast = f"{name}_{kind}_cast" if scale is not None else name
    nodes = [
        onnx.helper.make_node(
            "Cast", [init.name], [cast], name=f"{name}_from_{kind}", to=onnx.TensorProto.FLOAT
        )
    ]
    if scale is not None:
        graph.initializer.append(numpy_helper.from_array(scale, f"{name}_scale"))
        nodes.append(
            onnx.helper.make_node("Mul", [cast, f"{name}_scale"], [name], name=f"{name}_scaled")
        )
    return nodes


def _prepend(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + body)


def _fold_constants(path: Path, out: Path) -> None:
    """onnxruntime's basic (portable) graph optimizations, constant folding among them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 4
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(
    float_model: OnnxBackend,
    int8_model: OnnxBackend,
    clips: np.ndarray,
    targets: np.ndarray | None = None,
    batch_size: int = 256,
) -> Comparison:
    """Both models on (N, 16000) `clips`, one clip per call (as speechrnn-predict runs a file)
    and in batches; accuracies on clips whose target is a label index (targets < 0 mark
    unlabelled clips such as probes)."""
    alone = [_probabilities(m, clips, 1) for m in (float_model, int8_model)]  # 2 x (N, C)
    batched = [_probabilities(m, clips, batch_size) for m in (float_model, int8_model)]
    top = [p.argmax(axis=1) for p in alone]  # 2 x (N,)
    scored = Comparison(
        clips=len(clips),
        agreement=float((top[0] == top[1]).mean()),
        max_abs_diff=float(np.abs(alone[1] - alone[0]).max()),
        batch_diff=float(np.abs(alone[1] - batched[1]).max()),
    )
    labelled = np.flatnonzero(targets >= 0) if targets is not None else np.zeros(0, np.int64)
    if targets is None or not labelled.size:
        return scored
    labels, truth = float_model.labels, targets[labelled]

    def accuracy(probs: np.ndarray) -> Accuracy:
        hits = probs[labelled].argmax(axis=1) == truth  # (M,)
        rows = {int(t): truth == t for t in np.unique(truth)}  # label -> (M,) its clips
        return Accuracy({labels[t]: (int(hits[r].sum()), int(r.sum())) for t, r in rows.items()})

    return dataclasses.replace(
        scored,
        per_file=(accuracy(alone[0]), accuracy(alone[1])),
        batched=(accuracy(batched[0]), accuracy(batched[1])),
    )


def _probabilities(model: OnnxBackend, clips: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [model(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]
    )  # (N, C)


def size_mb(path: str | os.PathLike[str]) -> float:
    return Path(path).stat().st_size / 1e6
