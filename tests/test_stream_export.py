"""The listener's ONNX stream step: state in and out, the same posteriors as torch, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from speechrnn.errors import CheckpointError, ConfigError, ExportError
from speechrnn.inference import stream_export
from speechrnn.inference.backends import OnnxBackend
from speechrnn.inference.listener import STREAM_FORMAT, Listener, OnnxStep, open_step
from speechrnn.inference.stream_export import export_stream

from support.inference import cli_env, speechlike, tiny_checkpoint

LABELS = ["_silence_", "_unknown_", "yes", "no"]
CAUSAL = {"causal": True, "bidirectional": False, "conv_channels": 4, "conv_stride": 3}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    folder = tmp_path_factory.mktemp("stream")
    ckpt = tiny_checkpoint(folder / "listener.pt", LABELS, hidden_size=16, **CAUSAL)
    point = {"format": "speechrnn-detector/1", "thresholds": {"yes": 0.9, "no": 0.95}}
    path, diff = export_stream(ckpt, folder / "listener.onnx", detector=point)
    return ckpt, path, diff


def _audio() -> np.ndarray:
    return np.concatenate([speechlike(s) for s in range(3)])  # (3 s,)


def test_export_is_checked_and_describes_its_state(exported: tuple[Path, Path, float]) -> None:
    _, path, diff = exported
    assert diff < 1e-5
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert meta["format"] == STREAM_FORMAT and json.loads(meta["labels"]) == LABELS
    stream = json.loads(meta["stream"])
    assert stream["step_samples"] == 480
    assert stream["state"] == {"samples": [352], "frames": [2, 40], "h": [2, 16], "c": [2, 16]}
    assert json.loads(meta["detector"])["thresholds"] == {"yes": 0.9, "no": 0.95}


@pytest.mark.parametrize("chunk", [160, 333, 4800, 48000])
def test_onnx_streams_the_torch_posteriors_in_any_chunks(
    exported: tuple[Path, Path, float], chunk: int
) -> None:
    ckpt, path, _ = exported
    wave = _audio()
    reference = Listener(open_step(ckpt)).feed(wave)  # (steps, classes), one piece
    listener = Listener(OnnxStep(path))
    got = np.concatenate([listener.feed(wave[i : i + chunk]) for i in range(0, wave.size, chunk)])
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_onnx_streaming_needs_no_torch(exported: tuple[Path, Path, float]) -> None:
    code = (
        "import sys, numpy as np; from speechrnn.inference.listener import Listener, OnnxStep;"
        "out = Listener(OnnxStep(sys.argv[1])).feed(np.zeros(16000, np.float32));"
        "assert out.shape == (33, 4), out.shape; assert 'torch' not in sys.modules; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(exported[1])],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_per_clip_backends_refuse_a_stream_model(exported: tuple[Path, Path, float]) -> None:
    with pytest.raises(CheckpointError, match="not a speechrnn ONNX model"):
        OnnxBackend(exported[1])


def test_only_a_causal_model_exports_a_stream(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "clip.pt", LABELS)
    with pytest.raises(ConfigError, match="not a causal model"):
        export_stream(ckpt, tmp_path / "clip.onnx")
    assert not (tmp_path / "clip.onnx").exists()


def test_a_mismatch_is_not_written(
    tmp_path: Path, exported: tuple[Path, Path, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    def copy_graph(model, path: Path, metadata: dict[str, str]) -> None:
        path.write_bytes(exported[1].read_bytes())

    monkeypatch.setattr(stream_export, "_write_graph", copy_graph)
    monkeypatch.setattr(stream_export, "max_stream_diff", lambda model, step: 0.5)
    with pytest.raises(ExportError, match="not written"):
        export_stream(exported[0], tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_per_clip_export_of_a_listener_matches_torch(tmp_path: Path) -> None:
    from speechrnn.inference.export import export_onnx

    ckpt = tiny_checkpoint(tmp_path / "listener.pt", LABELS, hidden_size=16, **CAUSAL)
    result = export_onnx(ckpt, tmp_path / "clip.onnx")
    assert result.max_abs_diff < 1e-4
    clips = np.stack([speechlike(s) for s in range(4)])
    with torch.no_grad():
        from speechrnn.checkpoint import load_checkpoint

        eager = load_checkpoint(ckpt)(torch.from_numpy(clips)).softmax(-1).numpy()
    np.testing.assert_allclose(OnnxBackend(result.path)(clips), eager, atol=1e-4)
