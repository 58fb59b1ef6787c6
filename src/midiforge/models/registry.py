"""Model families by name.

Each family module registers its classes here; ``build`` makes a model from a name and a dict
of config values (unknown keys, values of the wrong type or out of range, and sizes that would
not fit in memory are errors that name the field; see :mod:`midiforge.models.limits`).
"""

from __future__ import annotations

import importlib
from typing import Any

from midiforge.config import from_dict
from midiforge.errors import MidiforgeError, choice_error
from midiforge.models.base import MidiModel
from midiforge.models.limits import check_model

# name -> "module:Class"; imported on first use so that listing names stays cheap.
_FAMILIES: dict[str, str] = {
    "lstm": "midiforge.models.rnn:LSTMModel",
    "gru": "midiforge.models.rnn:GRUModel",
    "transformer": "midiforge.models.transformer:TransformerModel",
    "lstm-multihead": "midiforge.models.note_lstm:NoteLSTM",
    "diffusion": "midiforge.models.diffusion:NoteDiffusion",
}


def names() -> list[str]:
    return sorted(_FAMILIES)


def model_class(name: str) -> type[MidiModel]:
    if name not in _FAMILIES:
        raise choice_error("model", name, names())
    module, cls = _FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def saved_values(name: str, values: dict[str, Any] | None) -> dict[str, Any]:
    """A saved run's model config ``values`` with each field added since runs were saved
    without it set to what those runs had (the config class's ``SAVED_DEFAULTS``)."""
    return {**getattr(model_class(name).config_class, "SAVED_DEFAULTS", {}), **(values or {})}


def checked_config(
    name: str, values: dict[str, Any] | None, *, where: str = "", saved: bool = False
) -> Any:
    """The family's config dataclass from ``values``, every field checked (``where`` names them).

    ``saved``: ``values`` are a trained run's (its ``config.yaml``), so a field added since the
    run was written takes the value runs had before it (the config class's ``SAVED_DEFAULTS``),
    not today's default for new runs.
    """
    cls = model_class(name)
    where = where or f"model {name}"
    if values is not None and not isinstance(values, dict):
        raise MidiforgeError(f"{where}: expected a mapping of keys to values, got {values!r}")
    values = saved_values(name, values) if saved else dict(values or {})
    config = from_dict(cls.config_class, values, where=where)
    check_model(cls, config, where)
    return config


def build(
    name: str, values: dict[str, Any] | None = None, *, where: str = "", saved: bool = False
) -> MidiModel:
    """A fresh ``name`` model from config ``values`` (checked first, see :func:`checked_config`)."""
    return model_class(name)(checked_config(name, values, where=where, saved=saved))
