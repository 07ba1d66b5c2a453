"""int8 export: written beside the float model, close to it, the same one clip per call as in
any batch, usable by every command, refused when it is not; any graph quantizes; bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
from omegaconf import OmegaConf
from onnx import TensorProto, helper, numpy_helper

from speechrnn.cli.export import export_task
from speechrnn.errors import ConfigError, ExportError
from speechrnn.inference import export
from speechrnn.inference.backends import OnnxBackend
from speechrnn.inference.export import ExportConfig, ExportResult, probe_signals
from speechrnn.inference.predict import load_model
from speechrnn.inference.quantize import MIN_ELEMENTS, quantize_int8
from speechrnn.labels import SILENCE

from support.cli import run_console
from support.inference import run_cli, write


@pytest.fixture(scope="module")
def exported(
    tone_checkpoint: Path, toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> ExportResult:
    out = tmp_path_factory.mktemp("int8") / "tone.onnx"
    cfg = OmegaConf.create({"ckpt_path": str(tone_checkpoint), "out": str(out), "quantize": "int8",
                            "heldout": str(toy_corpus), "max_accuracy_drop": 1.0})  # fmt: skip
    return export_task(cfg)


def test_int8_model_is_smaller_and_agrees_with_the_float_model(
    exported: ExportResult, toy_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exported.int8_path == exported.path.with_name("tone.int8.onnx")
    assert exported.int8_path.stat().st_size < 0.4 * exported.path.stat().st_size  # front end
    graph = onnx.load(exported.int8_path).graph
    assert "LSTM" in {node.op_type for node in graph.node}
    kinds = {init.name: init.data_type for init in graph.initializer}
    lstm = next(node for node in graph.node if node.op_type == "LSTM")
    assert all(kinds.get(f"{name}_int8") == TensorProto.INT8 for name in lstm.input[1:3])
    large_float = [
        init.name
        for init in graph.initializer
        if init.data_type == TensorProto.FLOAT
        and np.prod(init.dims) >= MIN_ELEMENTS
        and not init.name.endswith("_scale")
    ]
    assert not large_float  # weights int8, the other float constants float16
    meta = {p.key: p.value for p in onnx.load(exported.int8_path).metadata_props}
    assert meta["quantization"].startswith("int8 weights") and json.loads(meta["labels"])
    scored = exported.int8
    assert scored is not None and scored.clips > 12  # probes and the held-out test split
    assert scored.agreement >= 0.95 and scored.max_abs_diff < 0.05
    assert scored.batch_diff < 1e-5
    assert scored.per_file is not None and scored.batched is not None
    assert scored.accuracy_drop is not None and abs(scored.accuracy_drop) <= 0.05
    assert SILENCE in scored.per_file[0].per_label
    float_model, int8_model = load_model(exported.path), load_model(exported.int8_path)
    assert int8_model.labels == float_model.labels
    clip = np.asarray(np.random.default_rng(0).uniform(-0.3, 0.3, 16_000), np.float32)
    a, b = float_model.predict(clip), int8_model.predict(clip)
    assert abs(a.probability - b.probability) < 0.05


def test_the_export_prints_accuracy_per_file_batched_and_per_label(
    tone_checkpoint: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    done = run_console("speechrnn-export", f"ckpt_path={tone_checkpoint}", "quantize=int8",
                       f"out={tmp_path}/m.onnx", f"heldout={toy_corpus}",
                       "max_accuracy_drop=1.0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "one clip per call: top-1 agreement" in text and "a clip alone against" in text
    assert "  one clip per call: 0." in text and "  batched: 0." in text
    assert f"    {SILENCE}" in text and (tmp_path / "m.int8.onnx").is_file()


def test_a_clip_scores_the_same_alone_and_among_loud_clips(exported: ExportResult) -> None:
    assert exported.int8_path is not None
    model = OnnxBackend(exported.int8_path)
    rng = np.random.default_rng(1)
    clips = np.concatenate([probe_signals(), 0.02 * rng.standard_normal((4, 16_000))])
    loud = np.clip(rng.standard_normal((6, 16_000)), -1, 1)  # (6, T) near full scale
    for clip in clips.astype(np.float32):
        alone = model(clip[None])  # (1, C)
        among = model(np.concatenate([loud[:3], clip[None], loud[3:]]).astype(np.float32))[3]
        np.testing.assert_allclose(among, alone[0], atol=1e-5, rtol=0)


def test_noise_at_every_level_gets_the_float_answer(
    exported: ExportResult, toy_corpus: Path
) -> None:
    """Silence clips (noise crops) from just above digital silence to full scale, one per call:
    int8 answers what float answers (`_silence_` where float says so) with close probabilities."""
    assert exported.int8_path is not None
    float_model, int8_model = OnnxBackend(exported.path), OnnxBackend(exported.int8_path)
    for noise in sorted((toy_corpus / "_background_noise_").glob("*.wav")):
        crop = sf.read(noise, dtype="float32")[0][:16_000]  # (T,)
        for peak in (3e-4, 3e-3, 0.03, 0.3, 0.95):
            clip = (crop * peak / np.abs(crop).max())[None].astype(np.float32)  # (1, T)
            expected, got = float_model(clip)[0], int8_model(clip)[0]  # (C,) each
            assert got.argmax() == expected.argmax(), f"{noise.name} at peak {peak}"
            np.testing.assert_allclose(got, expected, atol=0.02)


def test_an_int8_model_that_fails_the_check_is_not_written(
    exported: ExportResult, toy_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = tmp_path / "m.onnx"
    float_path.write_bytes(exported.path.read_bytes())
    result = dataclasses.replace(exported, path=float_path, int8_path=None, int8=None)

    def per_call_scales(source: Path, out: Path) -> Path:  # activations scaled per call
        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8)
        return out

    monkeypatch.setattr(export, "quantize_int8", per_call_scales)
    settings = ExportConfig(ckpt_path="x.ckpt", heldout=str(toy_corpus), max_accuracy_drop=1.0)
    with pytest.raises(ExportError, match=r"move by .* with its batch mates"):
        export.export_int8(result, settings)

    def headless(source: Path, out: Path) -> Path:  # the float model with its head zeroed
        model = onnx.load(str(source))
        for init in model.graph.initializer:
            if "head" in init.name:
                init.CopyFrom(numpy_helper.from_array(0 * numpy_helper.to_array(init), init.name))
        onnx.save_model(model, str(out))
        return out

    monkeypatch.setattr(export, "quantize_int8", headless)
    strict = dataclasses.replace(settings, max_accuracy_drop=0.0)
    with pytest.raises(ExportError, match=r"int8 loses .* accuracy points"):
        export.export_int8(result, strict)
    assert not float_path.with_suffix(".int8.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_any_graph_quantizes_a_stateful_step_among_them(tmp_path: Path) -> None:
    """A stream step's shape: features and LSTM state in, posteriors and state out."""
    rng = np.random.default_rng(0)
    shapes = {"x": (5, 1, 8), "h": (1, 1, 32), "c": (1, 1, 32)}  # (T, B, F), (dirs, B, H) x 2
    weights = {"W": (1, 128, 8), "R": (1, 128, 32), "head": (32, 16)}
    nodes = [
        helper.make_node("LSTM", ["x", "W", "R", "", "", "h", "c"], ["y", "h_out", "c_out"],
                         hidden_size=32),
        helper.make_node("Squeeze", ["h_out", "axes"], ["last"]),
        helper.make_node("MatMul", ["last", "head"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"]),
    ]  # fmt: skip
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, s).astype(np.float32), n)
        for n, s in weights.items()
    ]
    inits.append(numpy_helper.from_array(np.array([0, 1]), "axes"))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
        for n in ("probabilities", "h_out", "c_out")
    ]
    graph = helper.make_graph(nodes, "step", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.metadata_props.add(key="format", value="a stream step")
    onnx.save_model(model, str(tmp_path / "step.onnx"))
    quantize_int8(tmp_path / "step.onnx", tmp_path / "step.int8.onnx")

    sessions = [ort.InferenceSession(str(tmp_path / n)) for n in ("step.onnx", "step.int8.onnx")]
    for _ in range(4):
        feed = {n: rng.normal(0, 1, s).astype(np.float32) for n, s in shapes.items()}
        expected, got = (session.run(None, feed) for session in sessions)
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_allclose(b, a, atol=0.05)
    stored = onnx.load(str(tmp_path / "step.int8.onnx"))
    kinds = {init.name: init.data_type for init in stored.graph.initializer}
    assert {kinds[f"{name}_int8"] for name in weights} == {TensorProto.INT8}
    meta = {p.key: p.value for p in stored.metadata_props}
    assert meta["format"] == "a stream step" and meta["quantization"].startswith("int8")


def test_int8_model_runs_in_predict_and_eval(
    exported: ExportResult, toy_corpus: Path, tmp_path: Path
) -> None:
    assert exported.int8_path is not None
    clip = sorted((toy_corpus / "yes").glob("*.wav"))[0]
    long = write(tmp_path / "long.wav", np.tile(sf.read(clip, dtype="float32")[0], 3))
    done = run_cli(exported.int8_path, clip, long, "--json")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == 2 and answers[1]["detections"] is not None
    ok = run_console(
        "speechrnn-eval",
        f"ckpt_path={exported.int8_path}",
        f"data.root={toy_corpus}",
        'data.words=["yes","no","up","down"]',
        f"report_dir={tmp_path}/rep",
        "streaming=true",
        "longform.duration=60",
    )
    assert ok.returncode == 0, ok.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["parameters"] is None and metrics["model_bytes"] > 0
    assert metrics["streaming"]["recording"]["commands"] >= 3
    assert "Streaming: misses and false alarms" in (tmp_path / "rep" / "report.md").read_text()


def test_bad_inputs_are_one_error_line(
    exported: ExportResult, toy_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="quantize must be null or one of int8, got 'int4'"):
        ExportConfig(ckpt_path="x.ckpt", quantize="int4")
    bad = run_console("speechrnn-export", f"ckpt_path={exported.path}", "quantize=int4",
                      f"out={tmp_path}/m.onnx")  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: export.quantize must be null or one of int8, got 'int4'"
    ]
    assert not (tmp_path / "m.onnx").exists()
    audio = write(tmp_path / "rec.wav", np.zeros(5 * 16_000, np.float32))
    common = [f"ckpt_path={exported.int8_path}", f"data.root={toy_corpus}",
              'data.words=["yes","no","up","down"]', "streaming=true",
              f"spotting.audio={audio}"]  # fmt: skip
    for name, text, expected in (
        ("words.csv", "yes,1.0\ngo,2.0\n", "words.csv:2: the model has no label 'go'"),
        ("late.csv", "yes,1.0,1.5\nno,4.8,6.0\n", "late.csv:2: times 4.8-6 s lie outside"),
    ):
        (tmp_path / name).write_text(text)
        done = run_console("speechrnn-eval", *common, f"spotting.labels={tmp_path / name}",
                           f"report_dir={tmp_path}/r_{name}")  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and expected in lines[0], done.stderr
