"""Typed configuration: dataclasses in, YAML and ``key=value`` overrides on top.

Every stage has a dataclass config. :func:`load_config` builds one from
defaults, then a YAML mapping, then dotted CLI overrides (``optim.lr=3e-4``),
checking names and converting types so a typo fails with a one-line error.

A mapping given as ``key=value`` merges into the mapping beneath it (``--set
"train={schedule: {steps: 20}}"`` keeps the YAML's other train fields);
``key:=value`` replaces it whole (``--set "model_seeds:={tiny-gpt2-nopos: [53]}"``
drops the YAML's entries).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from impossible_lms.errors import ILMError, did_you_mean

T = TypeVar("T")


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ILMError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ILMError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    except UnicodeDecodeError as e:
        raise ILMError(f"{path}: not UTF-8 text (byte {e.start}); give a YAML file") from None
    if not isinstance(data, dict):
        raise ILMError(f"{path}: expected a mapping at the top level")
    return data


@dataclasses.dataclass(frozen=True)
class Replace:
    """An override value that replaces what lies beneath it instead of merging into it (``key:=value``)."""

    value: Any


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` → ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values parsed as YAML);
    ``"d:={x: 1}"`` gives ``{"d": Replace({"x": 1})}``, which :func:`merge` puts in place whole."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ILMError(f"override {item!r} is not of the form key=value (or key:=value to replace a mapping)")
        key, raw = item.split("=", 1)
        replace = key.endswith(":")
        key = key[:-1] if replace else key
        if not key.strip() or any(not part.strip() for part in key.split(".")):
            raise ILMError(f"override {item!r}: empty field name before '='")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ILMError(f"override {item!r}: the value is not YAML ({str(e).splitlines()[0]})") from None
        value = Replace(value) if replace else value
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``top`` wins, and a :class:`Replace` value replaces without merging."""
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Replace):
            out[k] = _plain(v.value)
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = _plain(v)
    return out


def _plain(value: Any) -> Any:
    """``value`` with any :class:`Replace` inside a mapping unwrapped (nothing beneath to merge with)."""
    if isinstance(value, Replace):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if not isinstance(data, Mapping):
        raise ILMError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = unknown[0]
        raise ILMError(f"unknown config field {where + name!r}{did_you_mean(name, fields)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ILMError as e:
                errors.append(str(e))
        raise ILMError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and args and Ellipsis not in args:  # fixed length: (beta1, beta2)
            if len(value) != len(args):
                raise ILMError(f"{where}: expected {len(args)} values, got {len(value)} ({list(value)!r})")
            return tuple(_coerce(a, v, where) for a, v in zip(args, value))
        inner = args[0] if args else Any
        items = [_coerce(inner, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ILMError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ILMError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ILMError(f"{where}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ILMError(f"{where}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool):
            raise ILMError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ILMError(f"{where}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ILMError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ILMError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def check_range(where: str, value: float | int, *, gt: float | None = None, ge: float | None = None,
                lt: float | None = None, le: float | None = None) -> None:
    """ILMError ``"<where> must be ..., got <value>"`` unless ``value`` is within the bounds given
    (and finite: ``inf`` passes every lower bound, and nan no comparison, so neither ever passes)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        raise ILMError(f"{where} must be a finite number, got {value}")
    ok = ((gt is None or value > gt) and (ge is None or value >= ge)
          and (lt is None or value < lt) and (le is None or value <= le))
    if ok:
        return
    low, high = (gt, "(") if gt is not None else (ge, "["), (lt, ")") if lt is not None else (le, "]")
    if low[0] is not None and high[0] is not None:
        need = f"in {low[1]}{_bound(low[0])}, {_bound(high[0])}{high[1]}"
    elif ge is not None and isinstance(value, int) and float(ge).is_integer():
        need = f"at least {_bound(ge)}"
    elif low[0] is not None:
        need = f"{'>' if gt is not None else '>='} {_bound(low[0])}"
    else:
        need = f"{'<' if lt is not None else '<='} {_bound(high[0])}"
    shown = f"{value:g}" if isinstance(value, float) else repr(value)
    raise ILMError(f"{where} must be {need}, got {shown}")


def _bound(x: float) -> str:
    """A bound as a person writes it: whole numbers in full (4294967295, not 4.29497e+09)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def load_config(
    cls: type[T],
    yaml_path: str | Path | None = None,
    overrides: Mapping[str, Any] | list[str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> T:
    """Defaults ← ``base`` ← YAML file ← overrides (dicts or ``key=value`` strings)."""
    data: dict[str, Any] = dict(base or {})
    if yaml_path is not None:
        data = merge(data, read_yaml(yaml_path))
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    if overrides:
        data = merge(data, overrides)
    return from_dict(cls, data)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as plain YAML-safe data (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    from impossible_lms.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
