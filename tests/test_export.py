"""ONNX export: front end in the graph, metadata, dynamic batch, parity, refusal, torch-free use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli.export import export_task
from speechrnn.errors import ExportError
from speechrnn.inference import export
from speechrnn.inference.backends import OnnxBackend
from speechrnn.inference.export import probe_signals
from speechrnn.inference.predict import load_model

from support.inference import (
    LABELS,
    cli_env,
    modules_loaded_by_cli,
    speechlike,
    tiny_checkpoint,
    write,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, export.ExportResult]:
    """One export through speechrnn-export's task, with a folder of real clips."""
    root = tmp_path_factory.mktemp("export")
    ckpt = tiny_checkpoint(root / "tiny.pt")
    for i in range(4):
        write(root / "clips" / f"c{i}.wav", speechlike(i, seconds=0.8))
    cfg = OmegaConf.create({"ckpt_path": str(ckpt), "out": str(root / "out" / "m.onnx"),
                            "audio": str(root / "clips")})  # fmt: skip
    return ckpt, root / "out" / "m.onnx", export_task(cfg)


def test_export_writes_labels_and_settings_and_reports_parity(
    exported: tuple[Path, Path, export.ExportResult], capsys: pytest.CaptureFixture[str]
) -> None:
    _, onnx_path, result = exported
    assert result.path == onnx_path and onnx_path.is_file()
    assert result.clips == len(probe_signals()) + 4 and result.max_abs_diff < 1e-5
    meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert json.loads(meta["labels"]) == LABELS
    assert json.loads(meta["features"])["n_mfcc"] == 40 and meta["sample_rate"] == "16000"
    assert not list(onnx_path.parent.glob(".*tmp"))  # no temp file left behind
    graph = onnx.load(onnx_path).graph
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [
        "batch",
        16000,
    ]


@pytest.mark.parametrize("batch", [1, 3, 9])
def test_onnx_matches_eager_for_any_batch(
    exported: tuple[Path, Path, export.ExportResult], batch: int
) -> None:
    ckpt, onnx_path, _ = exported
    clips = np.stack([speechlike(40 + i) for i in range(batch)])  # (B, 16000)
    with torch.no_grad():
        eager = load_checkpoint(ckpt)(torch.from_numpy(clips)).softmax(-1).numpy()
    np.testing.assert_allclose(OnnxBackend(onnx_path)(clips), eager, atol=1e-5)


def test_stacked_frames_over_a_conv_stem_export_with_a_dynamic_batch(tmp_path: Path) -> None:
    settings = {"frame_stack": 3, "conv_channels": 4, "conv_stride": 2}  # one export, both paths
    ckpt = tiny_checkpoint(tmp_path / "m.pt", num_layers=2, bidirectional=True, **settings)
    result = export.export_onnx(ckpt, tmp_path / "m.onnx")
    clips = np.stack([speechlike(50 + i) for i in range(5)])  # (5, 16000)
    with torch.no_grad():
        eager = load_checkpoint(ckpt)(torch.from_numpy(clips)).softmax(-1).numpy()
    assert result.max_abs_diff < 1e-5
    np.testing.assert_allclose(OnnxBackend(result.path)(clips), eager, atol=1e-5)


def test_onnx_and_checkpoint_predict_the_same(
    tmp_path: Path, exported: tuple[Path, Path, export.ExportResult]
) -> None:
    ckpt, onnx_path, _ = exported
    long = write(tmp_path / "long.wav", np.concatenate([speechlike(i) for i in range(3)]))
    paths = [write(tmp_path / f"c{i}.wav", speechlike(10 + i)) for i in range(3)] + [long]
    a = [load_model(ckpt, top_k=len(LABELS)).predict(p) for p in paths]
    b = [load_model(onnx_path, top_k=len(LABELS)).predict(p) for p in paths]
    for x, y in zip(a, b, strict=True):
        assert (x.label, x.duration, x.detections) == (y.label, y.duration, y.detections)
        np.testing.assert_allclose([p for _, p in x.top_k], [p for _, p in y.top_k], atol=1e-5)


def test_onnx_cli_never_imports_torch(
    tmp_path: Path, exported: tuple[Path, Path, export.ExportResult]
) -> None:
    loaded = modules_loaded_by_cli(exported[1], write(tmp_path / "c.wav", speechlike(3)))
    assert "onnxruntime" in loaded
    assert not loaded & {"torch", "torchaudio", "lightning", "hydra", "omegaconf"}


def test_mismatch_refuses_to_write_and_keeps_the_old_file(
    tmp_path: Path,
    exported: tuple[Path, Path, export.ExportResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ckpt, onnx_path, _ = exported

    def copy_graph(model, path: Path, metadata: dict[str, str]) -> None:
        path.write_bytes(onnx_path.read_bytes())

    monkeypatch.setattr(export, "_write_graph", copy_graph)
    monkeypatch.setattr(export, "_max_abs_diff", lambda *args: 0.5)
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous export")
    with pytest.raises(ExportError, match=r"not written.*5\.00e-01"):
        export.export_onnx(ckpt, out)
    assert out.read_bytes() == b"previous export" and list(tmp_path.iterdir()) == [out]


def test_export_cli_reports_a_missing_checkpoint_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from speechrnn.cli.export import main; main()",
         f"ckpt_path={tmp_path / 'missing.pt'}", f"out={tmp_path / 'm.onnx'}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=cli_env(),
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr  # 2: a bad model file
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'missing.pt'}: checkpoint not found"
    )
    assert not (tmp_path / "m.onnx").exists()


def test_benchmark_runs_and_reports_every_number(
    exported: tuple[Path, Path, export.ExportResult],
) -> None:
    """A smoke run of the benchmark scripts/bench.py calls (tiny sizes; numbers not judged)."""
    from benchmarks.predict import bench_predict

    ckpt, onnx_path, _ = exported
    numbers = bench_predict(ckpt, onnx_path, clips=3, repeats=1, scan_seconds=3.0)
    for tag in ("ckpt", "onnx"):
        for key in ("cold_{}_s", "warm_{}_ms", "folder_{}_files_per_s", "scan_{}_x_realtime"):
            assert numbers[key.format(tag)] > 0
    assert numbers["import_torch_s"] > numbers["python_floor_s"] > 0
    assert numbers["cold_ckpt_vs_import_torch"] > 0


def test_the_onnx_web_server_imports_no_torch(
    exported: tuple[Path, Path, export.ExportResult],
) -> None:
    onnx = exported[1]
    code = (
        "import sys, json; from pathlib import Path; from starlette.testclient import TestClient;"
        "from speechrnn.inference.predict import load_model;"
        "from speechrnn.inference.serve.app import create_app;"
        "app = create_app(load_model(sys.argv[1]), Path(sys.argv[1]), 2**20);"
        "kind = TestClient(app).get('/api/model').json()['kind'];"
        "print(json.dumps([kind, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(onnx)], capture_output=True, text=True, timeout=120,
        env=cli_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kind, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert kind == "onnx" and "onnxruntime" in loaded
    assert not set(loaded) & {"torch", "torchaudio", "lightning", "hydra", "omegaconf"}
