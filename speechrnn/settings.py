"""Typed settings from plain mappings (Hydra/OmegaConf or dicts), with one-line errors.

The one place every number a user sets is checked for NaN and infinity, and for the range its
field declares with `bounded` (other range rules: each dataclass's `__post_init__`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from speechrnn.errors import ConfigError

T = TypeVar("T")
_RANGE = "speechrnn.range"  # dataclass field metadata: (lowest, highest, unit)


def bounded(default: T, low: float, high: float, unit: str = "") -> T:
    """A dataclass field that must lie in [low, high]; `check_ranges` and `from_mapping` say so."""
    bounds = {_RANGE: (low, high, unit)}
    return dataclasses.field(default=default, metadata=bounds)  # type: ignore[no-any-return]


def check_ranges(settings: Any) -> None:
    """ConfigError naming the first `bounded` field of dataclass `settings` outside its range."""
    for field in dataclasses.fields(settings):
        _in_range(getattr(settings, field.name), field, field.name)


def _in_range(value: Any, field: dataclasses.Field[Any], key: str) -> None:
    bounds = field.metadata.get(_RANGE)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:  # NaN is in no range
        low, high, unit = bounds
        raise ConfigError(f"{key} must be in [{_number(low)}, {_number(high)}]{unit}, got {value}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def from_mapping(
    cls: type[T],
    values: Mapping[str, Any] | None,
    section: str,
    names: Mapping[str, str] | None = None,
) -> T:
    """Build dataclass `cls` from `values`, checking keys and types; errors name `section`.

    `names` says how errors call a field (a command-line option, say) instead of `section.field`.
    """
    values = dict(plain(values) or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    names = names or {}
    kwargs = {}
    for name, value in values.items():
        key = names.get(name, f"{section}.{name}")
        kwargs[name] = _coerce(value, hints[name], key)
        _in_range(kwargs[name], fields[name], key)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{section}: {exc}") from None


def top_level(cls: type[T], cfg: Mapping[str, Any], command: str) -> T:
    """Build `cls` from those top-level keys of a command's config that are its fields."""
    keys = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return from_mapping(cls, {k: v for k, v in cfg.items() if k in keys}, command)


def plain(values: Any) -> Any:
    """OmegaConf containers to plain Python, resolving interpolations; `???` becomes an error."""
    if "omegaconf" not in sys.modules:  # then no OmegaConf container exists (nor gets imported)
        return values
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
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, inner, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return checked(value, key)
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
            return checked(float(value), key)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def checked(value: Any, key: str) -> Any:
    """`value` unchanged when no number in it (lists and mappings searched) is NaN or infinite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value}")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            checked(item, f"{key}[{i}]")
    if isinstance(value, dict):
        for name, item in value.items():
            checked(item, f"{key}.{name}")
    return value
