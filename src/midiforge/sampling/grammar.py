"""The token grammar of a MidiTok tokenization: which token types may follow which.

MidiTok states it as ``tokenizer.tokens_types_graph`` (e.g. REMI with velocities: ``Pitch →
Velocity → Duration → Pitch | Position | Bar``) and counts violations with
``tokenizer.tokens_errors`` (type order, time going backwards, duplicated notes). We use the
graph as a first-order constraint — the type of the previous token decides the allowed types of
the next — which is what a logits mask can enforce cheaply; the count reported after sampling is
MidiTok's own, stricter one.

The learned controls (``prepare --controls``: ``Chord_*``, ``Density_*``, ``Polyphony_*``,
:mod:`midiforge.data.controls`) are ours, not in MidiTok's graph: :func:`control_rows` lets
them follow a bar's ``TimeSig`` (``Bar`` without time signatures) and each other in their one
order, each at most once, and after each what may follow that ``TimeSig``. MidiTok's count
reads the ids without them.
"""

from __future__ import annotations

from typing import Any

import torch

from midiforge.errors import MidiforgeError
from midiforge.sampling.id_bits import from_tensor
from midiforge.schema import CONTROL_TYPES


def token_type(token: str) -> str:
    """``"Pitch_60"`` → ``"Pitch"``; ``"BOS_None"`` → ``"BOS"``."""
    return token.split("_", 1)[0]


class TypeGrammar:
    """Allowed-next-token masks built from a tokenizer's token-type graph.

    ``allowed[type_of[i]]`` is a ``(V,)`` bool row: the ids that may follow token ``i``. A type
    that the graph does not mention, or whose allowed types have no id in the vocabulary, allows
    everything, so the mask never leaves a step with no token to sample.
    """

    def __init__(self, tokenizer: Any) -> None:
        if getattr(tokenizer, "is_trained", False):
            raise MidiforgeError(
                "grammar mask: the run's tokenizer uses BPE, whose merged ids span several "
                "token types; sample with --no-grammar-mask (errors are still counted)"
            )
        graph: dict[str, set[str]] = tokenizer.tokens_types_graph
        vocab: dict[str, int] = tokenizer.vocab
        size = len(vocab)
        tokens = [""] * size
        for tok, i in vocab.items():
            tokens[i] = tok
        types = sorted({token_type(t) for t in tokens})
        index = {t: k for k, t in enumerate(types)}
        self.type_of = torch.tensor([index[token_type(t)] for t in tokens])  # (V,)
        allowed = torch.ones(len(types), size, dtype=torch.bool)  # (n_types, V)
        for prev, nexts in graph.items():
            if prev not in index:
                continue
            row = torch.tensor([t in nexts or token_type(t) in nexts for t in tokens])
            if row.any():
                allowed[index[prev]] = row
        control_rows(allowed, types, self.type_of)
        self.allowed = allowed
        self.types = types
        self.after = allowed[self.type_of]  # (V, V): the ids allowed after each id, one lookup
        self.after_bits = from_tensor(self.after)  # the same rows as ints (sampling.id_bits)

    def mask(self, last: torch.Tensor) -> torch.Tensor:
        """Bool ``(B, V)``: the ids allowed after each row's last token ``last`` ``(B,)``."""
        if self.after.device != last.device:
            self.after = self.after.to(last.device)
        return self.after[last]

    def mask_bits(self, last: list[int]) -> list[int]:
        """:meth:`mask` as one int per row (:mod:`midiforge.sampling.id_bits`)."""
        return [self.after_bits[i] for i in last]


def control_rows(allowed: torch.Tensor, types: list[str], type_of: torch.Tensor) -> None:
    """Set the grammar's rows for the control types in ``types`` (module docstring), in place:
    ``allowed`` ``(n_types, V)``, ``type_of`` ``(V,)`` the type index of each id."""
    present = [t for t in CONTROL_TYPES if t in types]
    if not present:
        return
    head = types.index("TimeSig" if "TimeSig" in types else "Bar")
    ids_of = {t: type_of == types.index(t) for t in present}  # (V,) each
    any_control = torch.stack(list(ids_of.values())).any(dim=0)
    then = allowed[head] & ~any_control  # what follows the bar's head, and its last control
    for k, kind in enumerate(present):
        row = then.clone()
        for later in present[k + 1 :]:
            row |= ids_of[later]
        allowed[types.index(kind)] = row
    allowed[head] |= any_control


def count_errors(tokenizer: Any, ids: list[int]) -> int:
    """Tokens of ``ids`` that break the tokenization's grammar, as MidiTok counts them (the
    learned controls' ids left out: MidiTok's graph does not know them)."""
    from miditok import TokSequence

    from midiforge.data.encode import control_ids

    dropped = control_ids(tokenizer)
    ids = [i for i in ids if int(i) not in dropped] if dropped else ids
    if len(ids) < 2:
        return 0
    # one TokSequence, whether or not the tokenizer is one-stream (it expects a list per track)
    ratio = tokenizer.tokens_errors(TokSequence(ids=[int(i) for i in ids]))
    return round(float(ratio) * len(ids))
