"""speechrnn-train: the Hydra task that checks the settings, trains, and returns the objective."""

from __future__ import annotations

import math
from typing import Any

from speechrnn.cli.hydra_app import hydra_main, hydra_multirun, hydra_output_dir


def train_task(cfg: Any) -> float:
    """Train the run `cfg` composes; return its objective (one minus the validation accuracy by
    default), the one float a Hydra sweeper minimises. A wrong setting is one line before
    Lightning loads (about 6 s); a process other than global rank 0 returns NaN."""
    from speechrnn.training.settings import TrainSettings

    settings = TrainSettings.from_config(cfg, hydra_output_dir(), hydra_multirun())
    from speechrnn.training.train import train

    metrics = train(settings)
    return settings.run.objective_value(metrics) if metrics else math.nan


main = hydra_main("train", "speechrnn.cli.train:train_task", "speechrnn-train: train a model.")
