"""Shared helpers for the prediction, streaming, robustness and export tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from speechrnn.inference.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
LABELS = ["yes", "no", "up", "_silence_", "_unknown_"]
RATE = 16_000
PLAIN = {"conv_channels": 0, "conv_stride": 1}  # no stem: the LSTM reads MFCC frames


def tiny_checkpoint(
    path: Path,
    labels: list[str] = LABELS,
    seed: int = 0,
    detector: dict[str, object] | None = None,
    **model: object,
) -> Path:
    """An untrained small plain LSTM (ModelConfig `model` overrides) saved as a checkpoint,
    with a listener's operating point (`detector` metadata) when given."""
    import torch

    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig, StackedLSTMClassifier

    torch.manual_seed(seed)
    model = StackedLSTMClassifier(
        labels, FeatureConfig(), ModelConfig(**{**PLAIN, "hidden_size": 32, **model})
    )
    return model.save(path, detector)


def speechlike(seed: int, seconds: float = 1.0, scale: float = 0.3) -> np.ndarray:
    """A deterministic voiced-looking burst centred in `seconds` of audio, float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.exp(-(((t - seconds / 2) / 0.12) ** 2))
    f0 = 120 + 40 * seed % 200
    tone = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 3 * f0 * t)
    return (scale * envelope * (tone + 0.2 * rng.standard_normal(t.shape[0]))).astype(np.float32)


def step_scene(
    seconds: int, labels: list[str], words: list[tuple[str, int, float]], step: int = 480
) -> tuple[np.ndarray, np.ndarray]:
    """(T,) quiet noise with a `speechlike` burst in each word's second, and (S, C) listener
    step posteriors: `_silence_` everywhere but the three steps just after each word, which
    give its label its peak and `_unknown_` the rest. `words`: (label, second, peak)."""
    rng = np.random.default_rng(0)
    wave = 0.001 * rng.standard_normal(seconds * RATE).astype(np.float32)  # (T,)
    posteriors = np.zeros((wave.size // step, len(labels)), np.float32)  # (S, C)
    posteriors[:, labels.index("_silence_")] = 1.0
    for n, (label, second, peak) in enumerate(words):
        wave[second * RATE : (second + 1) * RATE] += speechlike(n)
        at = round((second + 0.7) * RATE / step)
        posteriors[at : at + 3] = 0.0
        posteriors[at : at + 3, labels.index(label)] = peak
        posteriors[at : at + 3, labels.index("_unknown_")] = 1.0 - peak
    return wave, posteriors


def write(path: Path, wave: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype=subtype)
    return path


def run_cli(
    *args: str | Path, timeout: float = 120, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """speechrnn-predict in a fresh interpreter, this checkout first on the path."""
    code = "import sys; from speechrnn.cli.predict import main; sys.exit(main())"
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
        "import sys, json; from speechrnn.cli.predict import main; code = main(sys.argv[1:]);"
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


def _trim(wave: np.ndarray) -> np.ndarray:
    nonzero = np.flatnonzero(np.abs(wave) > 1e-3)
    return wave[nonzero[0] : nonzero[-1] + 1]


def _gap(rng: np.random.Generator, noise: np.ndarray) -> np.ndarray:
    """1.1 to 1.6 s: a quarter second of silence, steady noise, a quarter second of silence."""
    gap = np.zeros(int(rng.uniform(1.1, 1.6) * RATE))
    gap[RATE // 4 : -RATE // 4] = 0.05 * noise[: gap.shape[0] - RATE // 2]
    return gap


def _as_the_page_hears(wave: np.ndarray, delay: int) -> np.ndarray:
    """(T,) 16 kHz `wave` as the serve page's worklet hands it on: played at 48 kHz starting
    `delay` samples (48 kHz) late, box-filtered back to 16 kHz and rounded to 16 bits."""
    from speechrnn.audio import resample

    played = np.concatenate([np.zeros(delay, np.float32), resample(wave, RATE, 3 * RATE)])
    boxes = played[: played.shape[0] // 3 * 3].reshape(-1, 3).mean(axis=1)  # (T + delay / 3,)
    return np.round(np.clip(boxes, -1, 1) * 32767).astype(np.float32) / 32767


def _hearings(wave: np.ndarray) -> list[np.ndarray]:
    """`wave` as read from a file and as the page hears it, in four phases of the 100 ms windows."""
    return [wave] + [_as_the_page_hears(wave, delay) for delay in (1, 1202, 2400, 3601)]


def _first_spotted(
    model: Predictor, clips: list[Path], before: np.ndarray, after: np.ndarray, known: list[str]
) -> np.ndarray | None:
    """The first trimmed clip that, between `before` and `after`, gives exactly `known` in every
    one of its `_hearings` (a clip near the detection threshold would flip on float rounding)."""
    for clip in clips:
        speech = _trim(sf.read(clip)[0])
        recording = np.concatenate([before, speech, after]).astype(np.float32)
        if all(
            [d.label for d in model.predict(heard).detections] == known
            for heard in _hearings(recording)
        ):
            return speech
    return None


def spoken_recording(
    model: Predictor, corpus: Path, script: list[str], seed: int = 0, lead: float = 0.5
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Corpus words in `script` order with silence and noise between, and where the known ones are.

    Each word is its first utterance that `model` spots where it stands (the recording so far,
    then noise), so tests of the scan, the smoothing and the endpoints do not test the model.
    Returns the float32 recording and (word, start, end) seconds of each word `model` knows.
    """
    rng = np.random.default_rng(seed)
    noise = sf.read(corpus / "_background_noise_" / "pink_noise.wav")[0]
    wave, truth = np.zeros(int(lead * RATE)), []
    for word in script:
        gap = _gap(rng, noise)
        known = [label for label, _, _ in truth] + ([word] if word in model.labels else [])
        clips = sorted((corpus / word).glob("*.wav"))
        speech = _first_spotted(model, clips, wave, gap, known)
        assert speech is not None, f"the model spots no {word!r} after {known[:-1]}"
        if word in model.labels:
            truth.append((word, wave.shape[0] / RATE, (wave.shape[0] + speech.shape[0]) / RATE))
        wave = np.concatenate([wave, speech, gap])
    return wave.astype(np.float32), truth


def split_clips(corpus: Path, word: str, split: str) -> list[Path]:
    """The clips of `word` in `split` (train, validation or test) of a GSC-layout corpus."""
    lists = {"validation": "validation_list.txt", "test": "testing_list.txt"}
    listed = {name: set((corpus / file).read_text().split()) for name, file in lists.items()}
    clips = sorted((corpus / word).glob("*.wav"))
    if split in listed:
        return [p for p in clips if f"{word}/{p.name}" in listed[split]]
    return [p for p in clips if not any(f"{word}/{p.name}" in s for s in listed.values())]
