"""Model families by name.

Each family module registers its classes here; ``build`` makes a model from a name and a dict
of config values (unknown keys are an error that names them).
"""

from __future__ import annotations

import importlib
from typing import Any

from midiforge.config import from_dict
from midiforge.errors import choice_error
from midiforge.models.base import MidiModel

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


def build(name: str, values: dict[str, Any] | None = None) -> MidiModel:
    cls = model_class(name)
    config = from_dict(cls.config_class, dict(values or {}), where=f"model {name}")
    return cls(config)
