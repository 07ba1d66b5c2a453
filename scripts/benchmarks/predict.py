"""Prediction benchmark: cold start, warm latency, folder throughput and scanning speed."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrnn.audio import SAMPLE_RATE

from benchmarks import run_main

_CLI = "import sys; from speechrnn.cli.predict import main; sys.exit(main())"


def bench_predict(
    ckpt_path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str] | None = None,
    clips: int = 200,
    repeats: int = 5,
    scan_seconds: float = 60.0,
) -> dict[str, float]:
    """Seconds (``_s``), milliseconds (``_ms``) and rates for the checkpoint and ONNX paths.

    Cold starts are fresh interpreters running speechrnn-predict on one 1 s file (best of
    `repeats`), next to the floors `python -c pass`, `import torch` and `import onnxruntime`.
    Warm latency is the median of in-process `predict(file)` calls; throughput is a folder of
    `clips` files through `predict_files`; scanning is `scan_seconds` of audio, in x real time.
    An ONNX model is exported from the checkpoint when `onnx_path` is not given. Set
    OMP_WAIT_POLICY=PASSIVE before torch is imported, as speechrnn-predict does, for warm
    checkpoint numbers that match the command line on a busy machine.
    """
    from speechrnn.inference.predict import load_model

    with tempfile.TemporaryDirectory(prefix="speechrnn-bench-") as tmp:
        root = Path(tmp)
        folder = _write_clips(root / "clips", clips)
        one = folder / "clip0000.wav"
        long = root / "long.wav"
        sf.write(long, _signal(np.random.default_rng(1), scan_seconds), SAMPLE_RATE)
        if onnx_path is None:
            from speechrnn.inference.export import export_onnx

            onnx_path = export_onnx(ckpt_path, root / "model.onnx").path
        out: dict[str, float] = {
            "python_floor_s": _best(repeats, "pass"),
            "import_torch_s": _best(repeats, "import torch"),
            "import_onnxruntime_s": _best(repeats, "import onnxruntime"),
        }
        for tag, model_path in (("ckpt", ckpt_path), ("onnx", onnx_path)):
            out[f"cold_{tag}_s"] = _best(repeats, _CLI, str(model_path), str(one))
            model = load_model(model_path)
            model.predict(one)
            out[f"warm_{tag}_ms"] = 1000 * statistics.median(
                _timed(lambda m=model: m.predict(one)) for _ in range(max(5, 4 * repeats))
            )
            files = sorted(folder.iterdir())
            seconds = _timed(lambda m=model, f=files: list(m.predict_files(f)))
            out[f"folder_{tag}_files_per_s"] = len(files) / seconds
            out[f"scan_{tag}_x_realtime"] = scan_seconds / _timed(lambda m=model: m.predict(long))
        out["cold_ckpt_vs_import_torch"] = out["cold_ckpt_s"] / out["import_torch_s"]
        out["cold_onnx_vs_import_onnxruntime"] = out["cold_onnx_s"] / out["import_onnxruntime_s"]
    return out


def _signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Speech-like bursts over faint noise, float32 at 16 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    bursts = np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.3 * t)) * t)
    envelope = np.clip(np.sin(2 * np.pi * 0.7 * t), 0, None) ** 4
    noise = rng.standard_normal(t.shape[0])
    return (0.3 * envelope * bursts + 0.01 * noise).astype(np.float32)


def _write_clips(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        clip = np.roll(_signal(rng, 1.0), int(rng.integers(SAMPLE_RATE)))
        sf.write(folder / f"clip{i:04d}.wav", clip, SAMPLE_RATE, subtype="PCM_16")
    return folder


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _best(repeats: int, code: str, *args: str) -> float:
    """Fastest of `repeats` fresh interpreters running `code` (this checkout importable)."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c", code, *args]
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        runs.append(time.perf_counter() - start)
    return min(runs)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as speechrnn-predict does
    options: dict[str, dict[str, object]] = {
        "ckpt_path": {"metavar": "CKPT"},
        "--onnx": {"dest": "onnx_path", "default": None},
        "--clips": {"type": int, "default": 200},
        "--repeats": {"type": int, "default": 5},
    }
    return run_main("Benchmark speechrnn-predict.", options, bench_predict, argv)


if __name__ == "__main__":
    sys.exit(main())
