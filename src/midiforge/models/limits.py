"""What a model config may ask for: value ranges per field, and a bound on the model's size.

A config arrives from a YAML file a person may have edited (``RUN/config.yaml``, ``--set``),
so its values are checked before any tensor is allocated: a dropout of 2.0, a NaN weight or a
negative width would fail deep inside torch, and a width of 2**40 would try to allocate
terabytes. Each family's config declares its ranges in a ``check(where)`` method built from the
helpers here; :func:`check_model` runs it, then counts the parameters of the model built on
torch's ``meta`` device (shapes only, no memory) and refuses one above
:data:`MAX_PARAMETERS`.

The transformer's config lives in a file of its own; its ranges are
:func:`check_transformer_config` here, found through :data:`EXTERNAL_CHECKS`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from midiforge.errors import MidiforgeError

MAX_PARAMETERS = 2_000_000_000  # 8 GB of fp32 weights, before optimizer state
MAX_WIDTH = 65_536  # any embedding, hidden or channel width
MAX_LAYERS = 256  # stacked layers or blocks of any kind
MAX_VOCAB = 1_000_000  # token ids (MidiTok vocabularies are a few hundred to a few thousand)
MAX_LABELS = 100_000  # style labels
MAX_CONTEXT = 1 << 20  # tokens or notes of a context / window
MAX_TIMESTEPS = 100_000  # diffusion noise levels
MAX_KERNEL = 1_025  # convolution taps
MAX_LOSS_WEIGHT = 1e6  # loss weights and lr multipliers


def field_name(where: str, field: str) -> str:
    """``where.field``, or ``field`` alone when there is no ``where``."""
    return f"{where}.{field}" if where else field


def check_int(where: str, field: str, value: Any, lo: int, hi: int) -> None:
    """``lo <= value <= hi`` for an integer (bool refused: ``True`` is no width)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise MidiforgeError(
            f"{field_name(where, field)}: {value!r} is not accepted; expected a whole number "
            f"from {lo} to {hi}"
        )


def check_float(
    where: str, field: str, value: Any, lo: float, hi: float, *, hi_open: bool = False
) -> None:
    """``lo <= value <= hi`` (``< hi`` when ``hi_open``) for a finite number."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and lo <= value
        and (value < hi if hi_open else value <= hi)
    )
    if not ok:
        upper = f"up to but not including {hi:g}" if hi_open else f"to {hi:g}"
        raise MidiforgeError(
            f"{field_name(where, field)}: {value!r} is not accepted; expected a number from "
            f"{lo:g} {upper}"
        )


def check_dropout(where: str, field: str, value: Any) -> None:
    """A dropout probability: 0 <= p < 1 (1 would zero every activation)."""
    check_float(where, field, value, 0.0, 1.0, hi_open=True)


def check_probability(where: str, field: str, value: Any) -> None:
    check_float(where, field, value, 0.0, 1.0)


def check_ints(where: str, field: str, values: Any, lo: int, hi: int, *, max_len: int) -> None:
    """A non-empty list/tuple of at most ``max_len`` integers, each in ``lo..hi``."""
    if not isinstance(values, (list, tuple)) or not 1 <= len(values) <= max_len:
        raise MidiforgeError(
            f"{field_name(where, field)}: {values!r} is not accepted; expected 1 to {max_len} "
            "whole numbers"
        )
    for i, value in enumerate(values):
        check_int(where, f"{field}[{i}]", value, lo, hi)


def check_labels(where: str, config: Any) -> None:
    """``n_labels`` and ``label_dropout``, which every family has."""
    check_int(where, "n_labels", config.n_labels, 0, MAX_LABELS)
    check_probability(where, "label_dropout", config.label_dropout)


# --------------------------------------------------------------------------- transformer


def check_transformer_config(config: Any, where: str) -> None:
    """Ranges of :class:`midiforge.models.transformer.TransformerConfig`."""
    check_int(where, "vocab_size", config.vocab_size, 1, MAX_VOCAB)
    check_int(where, "max_seq_len", config.max_seq_len, 1, MAX_CONTEXT)
    check_int(where, "d_model", config.d_model, 1, MAX_WIDTH)
    check_int(where, "n_layers", config.n_layers, 1, MAX_LAYERS)
    check_int(where, "n_heads", config.n_heads, 1, MAX_WIDTH)
    if config.d_model % config.n_heads:
        raise MidiforgeError(
            f"{field_name(where, 'n_heads')}: {config.n_heads} does not divide "
            f"d_model={config.d_model}; pick a divisor"
        )
    check_int(where, "d_ff", config.d_ff, 1, 8 * MAX_WIDTH)
    check_dropout(where, "dropout", config.dropout)
    check_int(where, "max_rel", config.max_rel, 1, MAX_CONTEXT)
    check_labels(where, config)


# config class name -> its checks, for config classes that do not carry a check() method
EXTERNAL_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "TransformerConfig": check_transformer_config,
}


# --------------------------------------------------------------------------- size


def count_parameters(cls: type, config: Any) -> int:
    """Parameters plus buffers of ``cls(config)``, built on the meta device (no memory used)."""
    import torch

    with torch.device("meta"):
        model = cls(config)
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() for t in tensors.values())


def check_model(cls: type, config: Any, where: str = "") -> None:
    """Refuse a config outside its family's ranges, or one that builds too large a model.

    ``where`` prefixes every message (e.g. ``"RUN/config.yaml: model_config"``), so the person
    reads which file and which field.
    """
    own = getattr(config, "check", None)
    if own is not None:
        own(where)
    elif type(config).__name__ in EXTERNAL_CHECKS:
        EXTERNAL_CHECKS[type(config).__name__](config, where)
    try:
        size = count_parameters(cls, config)
    except MidiforgeError as exc:
        raise MidiforgeError(f"{where}: {exc}" if where else str(exc)) from None
    if size > MAX_PARAMETERS:
        raise MidiforgeError(
            f"{where or 'model'}: these sizes build a model of {size:,} parameters, more than "
            f"the {MAX_PARAMETERS:,} accepted; use smaller widths or fewer layers"
        )
