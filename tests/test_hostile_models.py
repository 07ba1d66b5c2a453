"""Crafted model files: every field checked before anything is built, bombs refused unread."""

from __future__ import annotations

import struct
import time
import zipfile
from pathlib import Path

import pytest
import torch

from speechrnn.checkpoint import check_resumable, load_checkpoint
from speechrnn.errors import CheckpointError

from support.inference import run_cli, tiny_checkpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict:
    stem = {"conv_channels": 16, "conv_stride": 3}  # the default recipe's stem, with its BatchNorm
    path = tiny_checkpoint(tmp_path_factory.mktemp("m") / "tiny.pt", **stem)
    return torch.load(path, weights_only=True)


def _crafted(tmp_path: Path, saved: dict, change) -> Path:
    raw = {**saved, "features": dict(saved["features"]), "model": dict(saved["model"])}
    raw["state_dict"] = dict(saved["state_dict"])
    change(raw)
    path = tmp_path / "crafted.pt"
    torch.save(raw, path)
    return path


CASES = [
    (lambda r: r.update(state_dict=[1, 2]), "state_dict must be a mapping of tensors, got a list"),
    (
        lambda r: r["model"].update(hidden_size=2_000_000),
        "model.hidden_size = 2000000 is out of range (at most 4096)",
    ),
    (lambda r: r["model"].update(hidden_size="128"), "model.hidden_size must be int, got '128'"),
    (lambda r: r["model"].update(hidden_size=True), "model.hidden_size must be int, got True"),
    (
        lambda r: r["model"].update(num_layers=0),
        "invalid settings (model.num_layers must be at least 1, got 0)",
    ),
    (
        lambda r: r["model"].update(pooling="max"),
        "invalid settings (model.pooling must be one of last, mean, attention, got 'max')",
    ),
    (lambda r: r["model"].update(rogue=1), "unknown model setting(s) rogue"),
    (
        lambda r: r["features"].update(n_mels=10**6),
        "features.n_mels = 1000000 is out of range (at most 256)",
    ),
    (lambda r: r["features"].update(hop_ms=float("nan")), "features.hop_ms = nan is out of range"),
    (lambda r: r.update(features=[1]), "features settings must be a mapping, got a list"),
    (lambda r: r.update(labels="yes no"), "labels must be a list of strings, got a str"),
    (lambda r: r.update(labels=["yes"]), "needs 2 to 1000 labels, got 1"),
    (lambda r: r.update(labels=["yes", "yes", "no", "up", "down"]), "labels repeat"),
    (
        lambda r: r.update(labels=["a\nb", "c", "d", "e", "f"]),
        "is empty, longer than 100 characters or not printable",
    ),
    (
        lambda r: r["model"].update(hidden_size=4096, num_layers=16),
        "parameters, more than 50,000,000; refusing to build it",
    ),
    (
        lambda r: r["state_dict"].pop("head.bias"),
        "weights do not match the declared architecture (missing head.bias)",
    ),
    (lambda r: r["state_dict"].update(extra=torch.zeros(1)), "(unexpected extra)"),
    (
        lambda r: r["state_dict"].update({"head.bias": torch.zeros(7)}),
        "tensor head.bias has shape (7,), the declared architecture needs (5,)",
    ),
    (
        lambda r: r["state_dict"].update({"head.bias": torch.zeros(5, dtype=torch.int64)}),
        "tensor head.bias has dtype torch.int64, not float",
    ),
    (
        lambda r: r["state_dict"].update({"stem.layers.1.num_batches_tracked": torch.zeros(())}),
        "tensor stem.layers.1.num_batches_tracked has dtype torch.float32, not integer",
    ),
    (
        lambda r: r["state_dict"].update({"head.bias": torch.zeros(5, dtype=torch.bool)}),
        "tensor head.bias has dtype torch.bool, not a number",
    ),
    (
        lambda r: r["state_dict"].update({"head.bias": torch.full((5,), float("inf"))}),
        "tensor head.bias holds NaN or infinite values",
    ),
    (
        lambda r: r["state_dict"].update({"head.bias": "zeros"}),
        "state_dict entry 'head.bias' is not a tensor",
    ),
]


def test_the_default_architecture_loads_with_its_integer_buffers(
    tmp_path: Path, saved: dict
) -> None:
    counters = [k for k, v in saved["state_dict"].items() if not v.is_floating_point()]
    assert counters  # the conv stem's BatchNorm counts batches in int64
    model = load_checkpoint(_crafted(tmp_path, saved, lambda r: None))
    assert all(torch.equal(model.state_dict()[k], saved["state_dict"][k]) for k in counters)


@pytest.mark.parametrize(("change", "message"), CASES)
def test_crafted_checkpoint_is_one_error(tmp_path: Path, saved: dict, change, message: str) -> None:
    path = _crafted(tmp_path, saved, change)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_predict_exits_2_on_a_list_state_dict(tmp_path: Path, saved: dict) -> None:
    change, message = CASES[0]
    path = _crafted(tmp_path, saved, change)
    done = run_cli(path, tmp_path / "missing.wav")
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: ") and message in line


def test_predict_exits_2_on_a_huge_model(
    tmp_path: Path, saved: dict, capfd: pytest.CaptureFixture[str]
) -> None:
    from speechrnn.cli.predict import main

    change, message = CASES[1]
    path = _crafted(tmp_path, saved, change)
    assert main([str(path), str(tmp_path / "missing.wav")]) == 2
    out, err = capfd.readouterr()
    (line,) = err.strip().splitlines()
    assert out == "" and line.startswith(f"error: {path}: ") and message in line


def test_standalone_model_is_not_resumable(tmp_path: Path, saved: dict) -> None:
    path = _crafted(tmp_path, saved, lambda r: None)
    with pytest.raises(CheckpointError, match="not a checkpoint written by speechrnn-train"):
        check_resumable(path, saved["features"], saved["model"])


def test_corrupt_ckpt_path_to_train_is_refused_before_any_work(tmp_path: Path) -> None:
    from speechrnn.training.train import train

    from support.cli import train_settings

    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    settings = train_settings([f"ckpt_path={bad}", "data=synthetic", f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(CheckpointError) as caught:  # speechrnn-train: this line, exit 2
        train(settings)
    assert str(caught.value) == f"{bad}: not a readable checkpoint (RuntimeError)"
    assert not (tmp_path / "run").exists()


def test_corrupt_checkpoint_to_a_hydra_script_is_one_line_exit_2(tmp_path: Path) -> None:
    from support.cli import run_console

    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    done = run_console(
        "speechrnn-export", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: {bad}: not a readable checkpoint (RuntimeError)"]


def test_onnx_with_wrong_signature_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from speechrnn.inference.backends import OnnxBackend

    inp = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 8000])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 8000])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["audio"], ["probabilities"])], "g", [inp], [out]
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {
        "format": "speechrnn-onnx/1",
        "labels": '["a", "b"]',
        "clip_samples": "16000",
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    with pytest.raises(
        CheckpointError, match=r"input 'audio' is tensor\(float\) \['batch', 8000\], expected"
    ):
        OnnxBackend(path)
    proto.metadata_props[1].value = '["a", "a"]'
    onnx.save(proto, path)
    with pytest.raises(CheckpointError, match="labels repeat"):
        OnnxBackend(path)


BOMB_BOUND_S = 20.0  # generous: each refusal reads a few kB


def _deflated(source: Path, target: Path) -> Path:
    """`source` (a torch zip) repacked with every member deflated, as a zip bomb is."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for member in old.infolist():
            new.writestr(member.filename, old.read(member))
    return target


def _declaring(source: Path, target: Path, size: int) -> Path:
    """`source` (a torch zip) whose first central directory entry declares `size` bytes."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        struct.pack_into("<I", data, archive.start_dir + 24, size)  # its uncompressed size
    target.write_bytes(bytes(data))
    return target


def _sparse(target: Path, size: int) -> Path:
    with target.open("wb") as out:
        out.truncate(size)
    return target


def _long_directory(target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for i in range(100):
            archive.writestr(f"{i:03d}" + "x" * 50_000, b"")
    return target


def _zeros(target: Path) -> Path:
    torch.save({"zeros": torch.zeros(16 * 2**20)}, target)  # 64 MiB
    return target


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pt")


BOMBS = {
    "64 MB of zeros deflated": (
        lambda tmp, tiny: _deflated(_zeros(tmp / "zeros.pt"), tmp / "bomb.pt"),
        r"would inflate 6\d,\d{3} bytes to 67,\d{3},\d{3}, over 100 times as many \(a zip bomb\)",
    ),
    "a member declaring 2 GiB": (
        lambda tmp, tiny: _declaring(tiny, tmp / "declared.pt", 2**31),
        r"its members would inflate to 2,147,\d{3},\d{3} bytes, more than 1,073,741,824",
    ),
    "a file over 1 GiB": (
        lambda tmp, tiny: _sparse(tmp / "huge.pt", 2**30 + 1),
        r"refused to load: 1,073,741,825 bytes, more than 1,073,741,824$",
    ),
    "a 5 MB zip directory": (
        lambda tmp, tiny: _long_directory(tmp / "names.pt"),
        r"a zip directory of 5,\d{3},\d{3} bytes, more than 4,194,304",
    ),
    "an ONNX file over 256 MiB": (
        lambda tmp, tiny: _sparse(tmp / "huge.onnx", 2**28 + 1),
        r"refused to load: 268,435,457 bytes, more than 268,435,456$",
    ),
}


@pytest.mark.parametrize(("make", "message"), list(BOMBS.values()), ids=list(BOMBS))
def test_model_files_that_would_take_too_much_memory_are_refused_unread(
    tmp_path: Path, tiny: Path, make, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    from speechrnn.inference.backends import open_backend

    path = make(tmp_path, tiny)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model file was handed to its loader")

    monkeypatch.setattr(torch, "load", never)
    monkeypatch.setattr(onnxruntime, "InferenceSession", never)
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=message) as caught:
        open_backend(path)
    assert time.monotonic() - start < BOMB_BOUND_S
    assert str(caught.value).startswith(f"{path}: refused to load: ")


def test_predict_on_a_zip_bomb_is_one_line_and_exit_2(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from speechrnn.cli.predict import main

    bomb = _deflated(_zeros(tmp_path / "zeros.pt"), tmp_path / "bomb.pt")
    assert main([str(bomb), str(tmp_path / "missing.wav")]) == 2
    out, err = capfd.readouterr()
    (line,) = err.strip().splitlines()
    assert out == "" and line.startswith(f"error: {bomb}: refused to load: ") and "zip bomb" in line


def test_a_deflated_checkpoint_within_the_limits_still_loads(tmp_path: Path, tiny: Path) -> None:
    packed = _deflated(tiny, tmp_path / "packed.pt")
    assert packed.stat().st_size < tiny.stat().st_size
    model = load_checkpoint(packed)
    expected = load_checkpoint(tiny).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
