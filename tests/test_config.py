"""Settings: typed values from plain mappings with one-line errors, and the recipe sweep configs."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from speechrnn import CONFIG_DIR
from speechrnn.cli.registry import defaults_of, train_sections
from speechrnn.errors import ConfigError
from speechrnn.evaluation.longform import LongformConfig
from speechrnn.evaluation.settings import EvalConfig, SpottingConfig
from speechrnn.features import FeatureConfig
from speechrnn.inference.export import ExportConfig
from speechrnn.inference.streaming import StreamConfig
from speechrnn.model import ModelConfig
from speechrnn.settings import from_mapping
from speechrnn.training.settings import OptimConfig, RunConfig

from support.cli import compose_config


def test_builds_and_coerces_ints_to_floats() -> None:
    cfg = from_mapping(FeatureConfig, {"win_ms": 25, "n_mfcc": 13}, "features")
    assert cfg.win_ms == 25.0 and isinstance(cfg.win_ms, float) and cfg.n_mfcc == 13


def test_accepts_omegaconf() -> None:
    cfg = from_mapping(ModelConfig, OmegaConf.create({"hidden_size": 64}), "model")
    assert cfg.hidden_size == 64


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"hidden_sise": 3}, "unknown key(s) hidden_sise"),
        ({"hidden_size": "big"}, "model.hidden_size: expected an integer"),
        ({"hidden_size": -4}, "model.hidden_size must be at least 1"),
        ({"bidirectional": "yes"}, "model.bidirectional: expected true or false"),
        ({"pooling": "max"}, "model.pooling must be one of"),
        ({"dropout": 1.5}, "model.dropout must be in"),
        ({"freq_warp": 1.0}, "model.freq_warp must be in"),
        ({"frame_stack": 0}, "model.frame_stack must be at least 1"),
        ({"conv_stride": 0}, "model.conv_stride must be at least 1"),
        ({"conv_channels": -1}, "model.conv_channels cannot be negative"),
        ({"mask_domain": "linear"}, "model.mask_domain must be one of"),
    ],
)
def test_errors_name_the_key(values: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        from_mapping(ModelConfig, values, "model")


def test_missing_required_value() -> None:
    with pytest.raises(ConfigError, match="missing required value"):
        from_mapping(ModelConfig, OmegaConf.create({"hidden_size": "???"}), "model")


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (CONFIG_DIR / "sweep").glob("*.yaml")))
def test_every_recipe_sweep_varies_keys_that_exist(sweep: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"+sweep={sweep}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    search = cfg.hydra.sweeper.get("direction") is not None  # Optuna: one seed, many settings
    assert ("seed" in params or search) and (len(params) >= 2 or sweep == "seeds")
    for key in params:
        assert OmegaConf.select(cfg, key) is not None, key
    assert f"runs/sweeps/{sweep}/" in cfg.hydra.sweep.dir


def test_cli_default_config_is_the_dataclass_defaults() -> None:
    cfg = compose_config("train", [])
    sections = train_sections()
    assert (sections[""], sections["model"], sections["optim"]) == (
        RunConfig,
        ModelConfig,
        OptimConfig,
    )
    run = {name: cfg[name] for name in defaults_of(sections.pop(""))}
    assert run == defaults_of(RunConfig)
    for section, cls in sections.items():
        assert OmegaConf.to_container(cfg[section], resolve=True) == defaults_of(cls), section
        assert from_mapping(cls, cfg[section], section) == cls(), section
    export = compose_config("export", ["ckpt_path=m.ckpt"])
    assert from_mapping(ExportConfig, export, "export") == ExportConfig("m.ckpt")
    evaluation = compose_config("eval", ["ckpt_path=m.ckpt"])
    top = {k: evaluation[k] for k in defaults_of(EvalConfig)}
    assert from_mapping(EvalConfig, top, "eval") == EvalConfig("m.ckpt")
    spotting = {"longform": LongformConfig, "stream": StreamConfig, "spotting": SpottingConfig}
    for section, cls in spotting.items():
        assert from_mapping(cls, evaluation[section], section) == cls(), section


def test_model_config_default_is_the_default_recipe() -> None:
    recipe = ModelConfig()
    assert (recipe.conv_channels, recipe.conv_stride) == (16, 3)
    assert (recipe.hidden_size, recipe.num_layers, recipe.bidirectional) == (128, 2, True)
    assert recipe.pooling == "mean"


@pytest.mark.parametrize(
    "variant",
    sorted(
        f"{group}/{p.stem}"
        for group in ("data", "model", "trainer")
        for p in (CONFIG_DIR / group).glob("*.yaml")
    ),
)
def test_variant_files_name_only_what_they_change(variant: str) -> None:
    group, name = variant.split("/")
    text = OmegaConf.load(CONFIG_DIR / group / f"{name}.yaml")
    parents = [d for d in text.get("defaults", []) if d != "_self_"]
    assert parents, f"{variant} must extend base or another variant"
    parent = compose_config("train", [f"{group}={parents[0]}"])[group]
    for key in (k for k in text if k != "defaults"):
        assert text[key] != parent[key], f"{variant}: {key} repeats its default {text[key]!r}"
