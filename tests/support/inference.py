"""Shared helpers for the prediction, streaming, robustness and export tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
LABELS = ["yes", "no", "up", "_silence_", "_unknown_"]
RATE = 16_000
PLAIN = {"conv_channels": 0, "conv_stride": 1}  # no stem: the LSTM reads MFCC frames


def tiny_checkpoint(path: Path, labels: list[str] = LABELS, seed: int = 0, **model: object) -> Path:
    """An untrained small plain LSTM (ModelConfig `model` overrides) saved as a checkpoint."""
    import torch

    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig, StackedLSTMClassifier

    torch.manual_seed(seed)
    model = StackedLSTMClassifier(
        labels, FeatureConfig(), ModelConfig(**{**PLAIN, "hidden_size": 32, **model})
    )
    return model.save(path)


def speechlike(seed: int, seconds: float = 1.0, scale: float = 0.3) -> np.ndarray:
    """A deterministic voiced-looking burst centred in `seconds` of audio, float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.exp(-(((t - seconds / 2) / 0.12) ** 2))
    f0 = 120 + 40 * seed % 200
    tone = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 3 * f0 * t)
    return (scale * envelope * (tone + 0.2 * rng.standard_normal(t.shape[0]))).astype(np.float32)


def write(path: Path, wave: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype=subtype)
    return path


def run_cli(
    *args: str | Path, timeout: float = 120, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """speechrnn-predict in a fresh interpreter, this checkout first on the path."""
    code = "import sys; from speechrnn.inference.predict import main; sys.exit(main())"
    return subprocess.run(
        [*prefix, sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def modules_loaded_by_cli(*args: str | Path) -> set[str]:
    """Top-level packages imported by one speechrnn-predict run (in a subprocess)."""
    code = (
        "import sys, json; from speechrnn.inference.predict import main; code = main(sys.argv[1:]);"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules}))); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
