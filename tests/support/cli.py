"""Running speechrnn as a user does: console scripts beside this interpreter, Hydra composition."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from speechrnn import CONFIG_DIR

SMALL_CORPUS_WORDS = ("yes", "no", "up", "down", "left", "right", "bird", "cat", "dog")
SMALL_CORPUS_SPEAKERS = 36
SMALL_WORDS = SMALL_CORPUS_WORDS[:6]  # the task's words; bird, cat and dog are its _unknown_


def console_script(name: str) -> str:
    """The installed console script `name` (speechrnn-train, ...) beside this interpreter."""
    return str(Path(sys.executable).parent / name)


def run_console(
    name: str, *args: str, timeout: float = 300, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run console script `name` with `args` to completion, its output captured as text."""
    return subprocess.run(
        [console_script(name), *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose conf/<name>.yaml with command-line style overrides, as the console scripts do."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def train_settings(overrides: list[str]) -> Any:
    """The TrainSettings of conf/train.yaml with `overrides`, as speechrnn-train checks them."""
    from speechrnn.training.settings import TrainSettings

    return TrainSettings.from_config(compose_config("train", overrides))


TRAINED_RUN = ("trainer.max_epochs=60", "optim.lr=1e-2", "model.hidden_size=128")  # its schedule


def small_task_overrides(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    """The 12-class-style task on `small_corpus` (6 words, _silence_, _unknown_), tiny and fast."""
    words = ",".join(f'"{w}"' for w in SMALL_WORDS)
    return [
        "data=gsc_v2_12",
        f"data.root={corpus}",
        f"data.words=[{words}]",
        "data.batch_size=32",
        "model=lstm_small",
        "trainer=cpu",
        "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1",
        f"run_dir={run_dir}",
        *extra,
    ]


def tone_task_overrides(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    """`tone_checkpoint`'s task and model on the tone corpus (yes no up down, lstm_small of 32)."""
    return [
        "data=gsc_v2_12",
        f"data.root={corpus}",
        'data.words=["yes","no","up","down"]',
        "data.batch_size=16",
        "model=lstm_small",
        "model.hidden_size=32",
        "trainer=cpu",
        "trainer.progress_bar=false",
        "evaluate=false",
        f"run_dir={run_dir}",
        *extra,
    ]


def data_variant(name: str) -> DictConfig:
    """The `data` section of conf/data/<name>.yaml as the CLI composes it (over the defaults)."""
    return compose_config("train", [f"data={name}"]).data
