"""speechrnn-calibrate: a listener's point fitted on a split's recording, saved in a copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechrnn.checkpoint import load_checkpoint, resolve_device
from speechrnn.data.corpus import open_corpus
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.errors import ConfigError
from speechrnn.evaluation.calibration import calibrate
from speechrnn.evaluation.longform import LongformConfig
from speechrnn.evaluation.settings import CalibrateConfig
from speechrnn.evaluation.spotter import step_posteriors, step_seconds
from speechrnn.evaluation.streaming_eval import noise_recordings, split_recording
from speechrnn.inference.listener import TorchStep
from speechrnn.inference.operating_point import OperatingPoint


@dataclass(frozen=True)
class Calibrated:
    """What speechrnn-calibrate wrote and found."""

    path: Path
    point: OperatingPoint
    summary: dict[str, Any]  # average_steps, hits, misses, false_alarms on the recording
    seconds: float  # of the recording
    commands: int  # keyword events in it


def calibrate_checkpoint(
    settings: CalibrateConfig,
    data: DataConfig,
    longform: LongformConfig | None = None,
    progress: bool = True,
) -> Calibrated:
    """Fit the operating point of the causal checkpoint `settings.ckpt_path` on the long
    recording speechrnn-eval streaming=true builds from `settings.split` (validation), and save
    the model with it as `settings.out` (a standalone checkpoint, written atomically)."""
    ckpt, out = Path(settings.ckpt_path), Path(settings.out)
    if ckpt.suffix.lower() == ".onnx":
        raise ConfigError(
            f"{ckpt}: calibrate the causal checkpoint, then export its stream step with the point"
        )
    if out.suffix.lower() == ".onnx":
        raise ConfigError(f"out={out}: a checkpoint is written; speechrnn-export it to ONNX")
    if out.resolve() == ckpt.resolve() or (out.exists() and ckpt.exists() and out.samefile(ckpt)):
        raise ConfigError(f"out={out} is the checkpoint itself: name a new file")
    model = load_checkpoint(ckpt, resolve_device(settings.device))
    if not model.config.causal:
        raise ConfigError(
            f"{ckpt}: a per-clip model (model.causal=false) has no listener to calibrate; "
            "train one with model=listener"
        )
    step = TorchStep(model)
    clips = load_split(data, settings.split, step.labels, seed=0, progress=progress)
    noise = noise_recordings(open_corpus(data, progress).noise())
    recording = split_recording(clips, noise, longform or LongformConfig())
    posteriors = step_posteriors(step, recording.wave, progress)  # (S, C)
    point, summary = calibrate(
        recording.wave,
        posteriors,
        step.labels,
        recording.events,
        step_seconds(step),
        settings.target_fa_per_hour,
        settings.tolerance,
        shared=settings.shared,
    )
    model.cpu().save(out, detector=point.to_metadata())
    commands = summary["hits"] + summary["misses"]
    return Calibrated(out, point, summary, recording.seconds, commands)
