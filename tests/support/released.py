"""Releases for tests: one built from any checkpoint with scripts/release.py's own steps, and
the checks the shipped release must pass (checksums, metadata, accuracy)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from speechrnn.data.files import sha256_file
from speechrnn.inference.released import Release, find_release

ROOT = Path(__file__).resolve().parents[2]  # the checkout
WHEEL_SOURCES = ("pyproject.toml", "README.md", "speechrnn", "conf")


def build_release(
    folder: Path, checkpoint: Path, name: str = "tiny", metrics: dict | None = None
) -> Path:
    """`folder` as scripts/release.sh leaves speechrnn/models/: `name`.int8.onnx and `name`.pt
    from `checkpoint`, and release.json (figures from `metrics`, a metrics.json's content)."""
    import release

    from speechrnn.inference.export import ExportConfig, export_int8, export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    weights = release.weights(checkpoint, folder / f"{name}.pt")
    exported = export_onnx(weights, folder / f"{name}.onnx")
    export_int8(exported, ExportConfig(ckpt_path=str(weights), quantize="int8"))
    (folder / f"{name}.onnx").unlink()
    report = folder / "metrics.json"
    report.write_text(json.dumps(metrics or empty_metrics()))
    try:
        release.manifest(folder, name, report, "tests", "none", ["tests"])
    finally:
        report.unlink()
    return folder


def empty_metrics() -> dict:
    return {"corpus": "none", "split": "test", "clips": 0, "accuracy": 0.0,
            "macro": {"f1": 0.0}, "per_class": {}}  # fmt: skip


def verify_release(folder: Path) -> Release:
    """The release in `folder`, every file's sha256 and size as its manifest says, and the
    ONNX model's labels and settings those of the manifest and of its own checkpoint."""
    import onnx

    from speechrnn.metadata import ONNX_FORMAT, from_onnx_properties
    from speechrnn.validation import check_metadata

    found = find_release(folder)
    for role, entry in found.files.items():
        assert entry.path.is_file(), role
        assert entry.path.stat().st_size == entry.bytes, role
        assert sha256_file(entry.path, progress=False) == entry.sha256, role
    props = {p.key: p.value for p in onnx.load(str(found.onnx)).metadata_props}
    assert props["format"] == ONNX_FORMAT and props["clip_samples"] == "16000"
    meta = from_onnx_properties(props)
    labels, _, _ = check_metadata(meta, str(found.onnx))  # every setting typed and bounded
    assert labels == found.manifest["labels"]
    weights = torch.load(found.weights, weights_only=True)
    assert weights["labels"] == labels and weights["features"] == meta["features"]
    assert weights["model"] == meta["model"]
    return found


def release_accuracy(found: Release, corpus: Path) -> tuple[float, int]:
    """(accuracy, clips) of the released ONNX model on `corpus`'s test split, as speechrnn-eval
    composes it for the model's labels."""
    from speechrnn.data.settings import DataConfig
    from speechrnn.data.splits import load_split
    from speechrnn.inference.backends import OnnxBackend
    from speechrnn.labels import SILENCE, UNKNOWN

    model = OnnxBackend(found.onnx)
    words = tuple(w for w in model.labels if w not in (SILENCE, UNKNOWN))
    clips = load_split(DataConfig(root=str(corpus), words=words), "test", model.labels)
    waves = np.asarray(clips.waves, np.float32) / 32768.0  # (N, 16000)
    probs = np.concatenate([model(waves[i : i + 256]) for i in range(0, len(waves), 256)])
    return float((probs.argmax(axis=1) == clips.targets).mean()), len(clips)


def build_wheel(out: Path) -> Path:
    """The wheel of this checkout (its package data included), built from a copy in `out`."""
    source = out / "source"
    source.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out / "wheel"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (out / "wheel").glob("*.whl")
    return wheel
