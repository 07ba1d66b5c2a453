"""Typed settings from plain mappings (Hydra/OmegaConf or dicts), with one-line errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from speechrnn.errors import ConfigError

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, section: str) -> T:
    """Build dataclass `cls` from `values`, checking keys and types; errors name `section`."""
    values = dict(_plain(values) or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(value, hints[name], f"{section}.{name}") for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{section}: {exc}") from None


def top_level(cls: type[T], cfg: Mapping[str, Any], command: str) -> T:
    """Build `cls` from those top-level keys of a command's config that are its fields."""
    keys = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return from_mapping(cls, {k: v for k, v in cfg.items() if k in keys}, command)


def _plain(values: Any) -> Any:
    """OmegaConf containers to plain Python, resolving interpolations; `???` becomes an error."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
        from omegaconf.errors import MissingMandatoryValue
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return values
    if isinstance(values, DictConfig | ListConfig):
        try:
            return OmegaConf.to_container(values, resolve=True, throw_on_missing=True)
        except MissingMandatoryValue as exc:
            raise ConfigError(
                f"missing required value: {exc.full_key} (set it on the command line)"
            ) from None
    return values


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a field's type; converts int to float and list to tuple if declared."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def hydra_output_dir() -> Path:
    """The active Hydra run's output dir, for outputs whose location the config leaves unset."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise ConfigError("no output dir is set and no Hydra run is active")
    return Path(HydraConfig.get().runtime.output_dir)


def hydra_multirun() -> bool:
    """Whether this is a job of a Hydra `-m` sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


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
    from speechrnn.training.distil import DistilConfig
    from speechrnn.training.settings import OptimConfig, RunConfig, TrainerConfig

    return {
        "": RunConfig,
        "data": DataConfig,
        "model": ModelConfig,
        "trainer": TrainerConfig,
        "features": FeatureConfig,
        "augment": AugmentConfig,
        "optim": OptimConfig,
        "distil": DistilConfig,
    }


def register_configs() -> None:
    """Give Hydra the dataclass defaults (conf/ YAML extends them) and conf/'s resolvers."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from speechrnn.data.gsc.sources import source_sha256, source_url
    from speechrnn.evaluation.longform import LongformConfig
    from speechrnn.evaluation.settings import EvalConfig, SpottingConfig
    from speechrnn.inference.export import ExportConfig
    from speechrnn.inference.streaming import StreamConfig

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
    train = {**defaults_of(sections.pop("")), **{k: defaults_of(c) for k, c in sections.items()}}
    store.store(name="train_base", node=train)
    store.store(name="export_base", node=defaults_of(ExportConfig))
    spotting = {"longform": LongformConfig, "stream": StreamConfig, "spotting": SpottingConfig}
    evaluation = {**defaults_of(EvalConfig), **{k: defaults_of(c) for k, c in spotting.items()}}
    store.store(name="eval_base", node=evaluation)
