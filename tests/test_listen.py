"""The listener in use: exported with its operating point, predicting files, serving a stream."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from omegaconf import OmegaConf
from starlette.testclient import TestClient

from speechrnn.cli.export import export_task
from speechrnn.cli.predict import main as predict_main
from speechrnn.inference.listener import Listener
from speechrnn.inference.listening import StepBackend
from speechrnn.inference.operating_point import OperatingPoint, detections
from speechrnn.inference.predict import Predictor, load_model
from speechrnn.inference.serve.app import create_app
from speechrnn.inference.streaming import StreamConfig

from support.inference import LABELS, modules_loaded_by_cli, speechlike, tiny_checkpoint, write

CAUSAL = {
    "causal": True,
    "bidirectional": False,
    "hidden_size": 16,
    "conv_channels": 4,
    "conv_stride": 3,
}
POINT = OperatingPoint({"yes": 0.2, "no": 0.2, "up": 0.21}, average_steps=2, suppress=0.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny untrained listener with its operating point, exported; the same without one."""
    root = tmp_path_factory.mktemp("listen")
    ckpt = tiny_checkpoint(root / "l.pt", LABELS, 2, POINT.to_metadata(), **CAUSAL)
    bare = tiny_checkpoint(root / "bare.pt", LABELS, 2, **CAUSAL)
    out = root / "l.onnx"
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # the float and the int8 step
        export_task(OmegaConf.create({"ckpt_path": str(ckpt), "out": str(out), "quantize": "int8"}))
    (root / "export.txt").write_text(printed.getvalue())
    wave = np.concatenate([speechlike(s, 1.0) for s in range(6)])  # (6 s,)
    return {"ckpt": ckpt, "bare": bare, "onnx": out, "long": write(root / "long.wav", wave)}


@pytest.fixture(scope="module")
def listener(models: dict[str, Path]) -> Predictor:
    return load_model(models["ckpt"])


def _long(models: dict[str, Path]) -> np.ndarray:
    import soundfile as sf

    return sf.read(models["long"], dtype="float32")[0]


def _spans(found: list) -> list[tuple[str, float, float]]:
    return [(d["label"], d["start"], d["end"]) if isinstance(d, dict) else
            (d.label, d.start, d.end) for d in found]  # fmt: skip


def test_export_writes_the_stream_step_with_its_point_and_in_int8(models: dict[str, Path]) -> None:
    meta = {p.key: p.value for p in onnx.load(models["onnx"]).metadata_props}
    assert meta["format"] == "speechrnn-stream-onnx/1"
    assert json.loads(meta["detector"]) == POINT.to_metadata()
    printed = models["onnx"].with_name("export.txt").read_text()
    assert "(stream step, its operating point;" in printed and "top-1 agreement" in printed
    int8 = load_model(models["onnx"].with_suffix(".int8.onnx"))
    assert int8.listening.point == POINT
    wave = _long(models)
    float_steps = Listener(load_model(models["onnx"]).listening.step).feed(wave)
    np.testing.assert_allclose(Listener(int8.listening.step).feed(wave), float_steps, atol=0.02)


def test_clip_answers_of_the_stream_onnx_match_the_checkpoint(
    models: dict[str, Path], listener: Predictor
) -> None:
    clips = np.stack([speechlike(s) for s in range(4)] + [np.zeros(16000, np.float32)])
    onnx_model = load_model(models["onnx"])
    assert isinstance(onnx_model.backend, StepBackend)
    got = onnx_model.probabilities(clips)  # (5, C), from the keyword-peak step
    np.testing.assert_allclose(got, listener.probabilities(clips), atol=1e-5)
    assert got[-1].argmax() == LABELS.index("_silence_")


@pytest.mark.parametrize("piece", [160, 777, 16000])
def test_a_file_scanned_at_once_and_fed_live_in_pieces_agree(
    models: dict[str, Path], piece: int
) -> None:
    listener = load_model(models["onnx"])  # (the checkpoint's pieces: the serve test)
    wave = _long(models)
    whole = listener.predict(wave).detections
    assert whole and {d.label for d in whole} <= {"yes", "no", "up"}
    live, found = listener.live(), []
    for at in range(0, wave.size, piece):
        found += live.feed(wave[at : at + piece])
    found += live.finish()
    assert _spans(found) == _spans(whole)
    assert [d.probability for d in found] == pytest.approx([d.probability for d in whole])
    posteriors = Listener(listener.listening.step).feed(wave)  # the calibration's offline path
    offline = POINT.posteriors(detections(wave, posteriors, LABELS, POINT))
    assert _spans(offline) == _spans(whole)
    assert [d.probability for d in offline] == pytest.approx([d.probability for d in whole])
    averaged = np.concatenate([posteriors[:1], (posteriors[1:] + posteriors[:-1]) / 2])  # (S, C)
    for d in whole:  # each reports the averaged posterior it fired at, at least its threshold
        assert d.probability >= POINT.thresholds[d.label]
        assert np.isclose(averaged[:, LABELS.index(d.label)], d.probability, atol=1e-6).any()


def test_predict_scans_long_files_with_the_stored_point_from_either_file(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    answers = []
    for model in (models["ckpt"], models["onnx"]):
        assert predict_main([str(model), str(models["long"]), "--json"]) == 0
        answers.append(json.loads(capsys.readouterr().out))
    torch_answer, onnx_answer = answers
    assert torch_answer["detections"] and _spans(onnx_answer["detections"]) == _spans(
        torch_answer["detections"]
    )
    assert predict_main([str(models["onnx"]), str(models["long"])]) == 0
    assert "detections)" in capsys.readouterr().out.splitlines()[0]


def test_onnx_listening_needs_no_torch(models: dict[str, Path]) -> None:
    loaded = modules_loaded_by_cli(models["onnx"], models["long"])
    assert not loaded & {"torch", "lightning", "hydra"}


def test_without_a_stored_point_the_detect_options_apply(
    models: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    stream = StreamConfig(average=0.09, threshold=0.3, suppress=2.0)
    point = load_model(models["bare"], stream=stream).listening.point
    assert point.thresholds == {"yes": 0.3, "no": 0.3, "up": 0.3}
    assert (point.average_steps, point.suppress) == (3, 2.0)
    assert load_model(models["ckpt"], stream=stream).listening.point == POINT  # stored wins
    assert predict_main([str(models["bare"]), str(models["long"]), "--detect-threshold", "1"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--detect-threshold must be between 0 and 1" in err[0]


def test_serve_streams_through_a_listener(models: dict[str, Path], listener: Predictor) -> None:
    client = TestClient(create_app(listener, models["ckpt"], 2**20))
    assert client.get("/api/model").json()["settings"]["detector"] == POINT.to_metadata()
    pcm = np.round(_long(models) * 32768).astype("<i2").tobytes()  # the file's own samples
    events = []
    with client.websocket_connect("/api/stream") as ws:
        assert ws.receive_json()["detector"]["thresholds"] == POINT.thresholds
        for at in range(0, len(pcm), 3200):  # 100 ms frames, as the page sends
            ws.send_bytes(pcm[at : at + 3200])
            while (event := ws.receive_json())["type"] != "posteriors":
                events.append(event)
            assert len(event["probabilities"]) == len(LABELS)
        ws.send_text(json.dumps({"type": "stop"}))
        while (event := ws.receive_json())["type"] != "end":
            events.append(event)
    found = [e for e in events if e["type"] == "detection"]
    scanned = client.post("/api/predict?name=l.wav", content=models["long"].read_bytes()).json()
    assert found and _spans(found) == _spans(scanned["detections"])


def test_the_listening_benchmark_times_scans_and_live_streams(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from benchmarks.listening import bench_listening

    window = tiny_checkpoint(tmp_path / "window.pt", LABELS, 2)
    paths = [str(window), str(models["ckpt"]), str(models["onnx"])]
    numbers = bench_listening(paths, str(models["long"]), seconds=3.0)
    assert numbers["audio_s"] == 3.0
    for path in paths:
        for mode in ("scan", "live"):
            assert 0 < numbers[f"{Path(path).name}_{mode}"] < np.inf
