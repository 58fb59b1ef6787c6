"""Plain dataclass configs: loaded from YAML, overridden per key, saved beside every run.

A config is a (possibly nested) dataclass whose fields are a constructor's keyword arguments.
``from_dict`` rejects unknown keys by name instead of ignoring them, so a typo in a YAML file
or a ``--set`` flag is an error, not a silently unused value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from midiforge.errors import MidiforgeError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts (what YAML and JSON store)."""
    return dataclasses.asdict(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert ``value`` (from YAML or a ``key=value`` string) to ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return from_dict(annotation, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except MidiforgeError as exc:
                errors.append(str(exc))
        raise MidiforgeError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if origin is typing.Literal:
        if isinstance(value, str) and value not in args:
            for arg in args:
                if str(arg) == value:
                    return arg
        if value not in args:
            raise MidiforgeError(
                f"{where}: {value!r} is not accepted; expected one of: " + ", ".join(map(str, args))
            )
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise MidiforgeError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise MidiforgeError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise MidiforgeError(
                f"{where}: expected {annotation.__name__}, got {value!r}"
            ) from None
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error that names them."""
    if not isinstance(data, dict):
        raise MidiforgeError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise MidiforgeError(
            f"{where}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with an error that names the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise MidiforgeError(f"config file not found: {path}")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise MidiforgeError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def save_yaml(data: dict[str, Any], path: str | Path) -> None:
    """Write ``data`` as YAML atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    tmp.replace(path)


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key=value`` / ``a.b=value`` strings to a nested dict (values parsed as YAML)."""
    result = dict(data)
    for item in overrides or []:
        if "=" not in item:
            raise MidiforgeError(f"--set {item!r}: expected key=value, e.g. --set lr=3e-4")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return result
