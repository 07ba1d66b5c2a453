"""Hydra's view of the settings: dataclass defaults as config nodes, resolvers, command help."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

from speechrnn import CONFIG_DIR

COMMAND_GROUPS = {  # the config groups each Hydra command composes, as its --help lists them
    "train": ("data", "model", "trainer", "logger", "+sweep", "+recipe"),
    "eval": ("data",),
    "export": (),
    "download": ("data",),
    "calibrate": ("data",),
}
HELP = """{summary}

Usage: speechrnn-{command} [KEY=VALUE ...]{groups_usage}
{groups}
Settings (KEY=VALUE; a new key: +KEY=VALUE), composed with the options given:

$CONFIG
Every key and its default: {docs}. Hydra's own options: --hydra-help.
"""
DOCS = {
    "train": "docs/training.md#settings",
    "eval": "docs/evaluation.md",
    "export": "docs/inference.md",
    "download": "docs/data.md#settings",
    "calibrate": "docs/deployment.md#calibrating-a-listener-speechrnn-calibrate",
}


def defaults_of(cls: type) -> dict[str, Any]:
    """A dataclass's defaults as plain values; a field without a default is Hydra's `???`."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = "???"
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def train_sections() -> dict[str, type]:
    """The dataclass behind each section of speechrnn-train's config ("": the top-level keys)."""
    from speechrnn.augment import AugmentConfig
    from speechrnn.data.settings import DataConfig
    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig
    from speechrnn.training.mixtures import DetectionConfig
    from speechrnn.training.settings import DistilConfig, OptimConfig, RunConfig, TrainerConfig

    return {
        "": RunConfig,
        "data": DataConfig,
        "model": ModelConfig,
        "trainer": TrainerConfig,
        "features": FeatureConfig,
        "augment": AugmentConfig,
        "optim": OptimConfig,
        "distil": DistilConfig,
        "detection": DetectionConfig,
    }


def eval_sections() -> dict[str, type]:
    """The dataclass behind each section of speechrnn-eval's config besides `data`."""
    from speechrnn.evaluation.longform import LongformConfig
    from speechrnn.evaluation.settings import EvalConfig, SpottingConfig
    from speechrnn.inference.streaming import StreamConfig

    return {
        "": EvalConfig,
        "longform": LongformConfig,
        "stream": StreamConfig,
        "spotting": SpottingConfig,
    }


def calibrate_sections() -> dict[str, type]:
    """The dataclass behind each section of speechrnn-calibrate's config besides `data`."""
    from speechrnn.evaluation.longform import LongformConfig
    from speechrnn.evaluation.settings import CalibrateConfig

    return {"": CalibrateConfig, "longform": LongformConfig}


def register_configs() -> None:
    """Give Hydra the dataclass defaults (conf/ YAML extends them), conf/'s resolvers and each
    command's --help."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from speechrnn.data.gsc.sources import source_sha256, source_url
    from speechrnn.inference.export import ExportConfig

    resolvers = {
        "either": lambda value, fallback: value or fallback,  # ${either:${run_dir},runs/...}
        "gsc_url": source_url,  # ${gsc_url:v0.01}
        "gsc_sha256": source_sha256,
        "sweep_dir": lambda sweep: f"sweeps/{sweep}" if sweep else "multirun",  # +sweep=NAME
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    store = ConfigStore.instance()
    sections = train_sections()
    for group in ("data", "model", "trainer"):  # chosen with data=, model=, trainer=
        store.store(group=group, name="base", node=defaults_of(sections.pop(group)))
    store.store(name="train_base", node=_nested(sections))
    store.store(name="export_base", node=defaults_of(ExportConfig))
    store.store(name="eval_base", node=_nested(eval_sections()))
    store.store(name="calibrate_base", node=_nested(calibrate_sections()))
    for command in COMMAND_GROUPS:
        store.store(group="hydra/help", name=f"speechrnn_{command}", node=command_help(command))


def command_help(command: str) -> dict[str, str]:
    """Hydra's help node for speechrnn-<command>: its own groups and their options only."""
    groups = COMMAND_GROUPS[command]
    lines = [
        textwrap.fill(
            ", ".join(group_options(group.lstrip("+"))),
            width=100,
            initial_indent=f"  {group}: ",
            subsequent_indent=" " * (len(group) + 4),
        )
        for group in groups
    ]
    summary = _SUMMARIES[command]
    text = HELP.format(
        summary=summary,
        command=command,
        groups_usage=" [GROUP=OPTION ...] [-m: a sweep]" if groups else "",
        groups="\nGroups (GROUP=OPTION):\n" + "\n".join(lines) + "\n" if groups else "",
        docs=DOCS[command],
    )
    return {"app_name": f"speechrnn-{command}", "header": summary, "footer": "", "template": text}


def group_options(group: str) -> list[str]:
    """The options of a config group: its YAML files in conf/<group>/."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def _nested(sections: dict[str, type]) -> dict[str, Any]:
    """One config node: the "" section's keys at the top, every other section under its name."""
    top = sections.pop("")
    return {**defaults_of(top), **{name: defaults_of(cls) for name, cls in sections.items()}}


_SUMMARIES = {
    "train": "speechrnn-train: train a model.",
    "eval": "speechrnn-eval: write an evaluation report for a model.",
    "export": "speechrnn-export: export a checkpoint to ONNX.",
    "download": "speechrnn-download: fetch, verify, extract, index and cache a corpus.",
    "calibrate": "speechrnn-calibrate: fit a listener's operating point into a copy of its model.",
}
