"""Listening speed: audio seconds per CPU second of long-file scans and live streams, as
speechrnn-predict and speechrnn-serve run them, for any models (sliding window or listener).

PYTHONPATH=scripts python -m benchmarks.listening MODEL [MODEL ...] --audio long.wav [--seconds 120]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE, read_audio

from benchmarks import run_main

PIECE = 0.1  # seconds of audio a live client sends at a time (the serve page's worklet)


def bench_listening(
    models: list[str], audio: str, seconds: float = 120.0, threads: int = 1
) -> dict[str, float]:
    """For each model: `<name>_scan` (the whole `seconds` through `Predictor.predict`, as one
    long file) and `<name>_live` (`Predictor.live()` fed PIECE-second pieces), in audio seconds
    per CPU second of this process, with torch and onnxruntime held to `threads` threads."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from speechrnn.inference.predict import load_model

    if any(not m.endswith(".onnx") for m in models):
        import torch

        torch.set_num_threads(threads)
    wave = read_audio(audio)[: int(seconds * SAMPLE_RATE)]  # (T,)
    length = wave.shape[0] / SAMPLE_RATE
    out: dict[str, float] = {"audio_s": length}
    for path in models:
        predictor = load_model(path)
        name = Path(path).name
        out[f"{name}_scan"] = length / _cpu(lambda p=predictor: p.predict(wave))
        out[f"{name}_live"] = length / _cpu(lambda p=predictor: _live(p, wave))
    return out


def _live(predictor: object, wave: np.ndarray) -> None:
    stream = predictor.live()  # type: ignore[attr-defined]
    size = round(PIECE * SAMPLE_RATE)
    for lo in range(0, wave.shape[0], size):
        stream.feed(wave[lo : lo + size])
    stream.finish()


def _cpu(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    options: dict[str, dict[str, object]] = {
        "models": {"nargs": "+", "help": "checkpoints or ONNX files (per-clip or listener)"},
        "--audio": {"required": True, "help": "a long recording (any soundfile format)"},
        "--seconds": {"type": float, "default": 120.0},
        "--threads": {"type": int, "default": 1},
    }
    return run_main(__doc__.splitlines()[0], options, bench_listening, argv)


if __name__ == "__main__":
    sys.exit(main())
