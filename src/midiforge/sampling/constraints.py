"""Rules on the next token, applied while sampling, in one documented order.

A :class:`TokenConstraint` follows each sample as it grows (it sees the primer, then every id
drawn) and says before each step which ids may come next (a ``(B, V)`` bool mask) and, if it
steers rather than forbids, how to shift the logits. The token sampler
(:func:`midiforge.sampling.autoregressive.sample`) calls them in the order given; the order
that ``generate`` builds is

1. grammar (the tokenization's type graph, :class:`GrammarConstraint`),
2. instruments (which Program tokens may appear),
3. the musician's hard constraints (key, range, polyphony, length), in that order.

Masks are combined by AND. When a later rule would leave a row with no id at all, that rule
is dropped for that row at that step and the earlier ones stand: a sample never stalls, and
grammar, the first rule, is never given up for a later one.

A rule may also offer ``allowed_bits()``: the same mask as one Python int per row
(:mod:`midiforge.sampling.id_bits`), with ``n_ids`` its vocabulary size V. When every rule of
a call offers it, the masks are combined as ints and become one tensor: a few integer
operations per row where tensors take several torch calls a step (issue 16: the grammar and
the musician's rules together cost at most 1.1x a plain step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from midiforge.sampling.id_bits import RowTensors, combine_bits


@runtime_checkable
class TokenConstraint(Protocol):
    """What the token sampler asks of a rule. Shapes: B samples, V vocabulary ids."""

    def start(self, seq: torch.Tensor) -> None:
        """The batch's start ids ``(B, P)`` (BOS and the primer), before the first step."""

    def allowed(self) -> torch.Tensor | None:
        """Bool ``(B, V)``: the ids that may come next; None allows everything."""

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        """The next step's logits ``(B, V)``, shifted where the rule prefers ids; else as is."""

    def update(self, token: torch.Tensor) -> None:
        """The ids ``(B,)`` just drawn."""


def combine(masks: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """AND of the masks in order; a mask that would empty a row is skipped for that row."""
    out: torch.Tensor | None = None
    for mask in masks:
        if mask is None:
            continue
        if out is None:
            out = mask  # not written to: every step below makes a new tensor
            continue
        both = out & mask
        keeps = both.any(dim=-1, keepdim=True)  # (B, 1): the rule leaves this row an id
        out = both if bool(keeps.all()) else torch.where(keeps, both, out)
    return out


class GrammarConstraint:
    """The tokenization's type grammar (:class:`~midiforge.sampling.grammar.TypeGrammar`)
    as a rule: the previous token's type decides the allowed types of the next."""

    def __init__(self, grammar) -> None:
        self.grammar = grammar
        self.n_ids = grammar.after.shape[1]
        self.last: torch.Tensor | None = None

    def start(self, seq: torch.Tensor) -> None:
        self.last = seq[:, -1]

    def allowed(self) -> torch.Tensor | None:
        return None if self.last is None else self.grammar.mask(self.last)

    def allowed_bits(self) -> list[int] | None:
        return None if self.last is None else self.grammar.mask_bits(self.last.tolist())

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def update(self, token: torch.Tensor) -> None:
        self.last = token


class Rules:
    """The constraints of one ``sample`` call, called together in their order."""

    def __init__(self, constraints: Sequence[TokenConstraint]) -> None:
        self.constraints = list(constraints)
        # as ints only where there is something to combine: one tensor mask is cheaper as is
        self.as_bits = len(self.constraints) > 1 and all(
            hasattr(c, "allowed_bits") for c in self.constraints
        )
        self.device = torch.device("cpu")
        self.tensors: RowTensors | None = None

    def __bool__(self) -> bool:
        return bool(self.constraints)

    def start(self, seq: torch.Tensor) -> None:
        self.device = seq.device
        if self.as_bits:
            self.tensors = RowTensors(self.constraints[0].n_ids, seq.device)
        for c in self.constraints:
            c.start(seq)

    def allowed(self) -> torch.Tensor | None:
        if not self.as_bits:
            return combine([c.allowed() for c in self.constraints])
        masks = [m for m in (c.allowed_bits() for c in self.constraints) if m is not None]
        if not masks:
            return None
        if len(masks) == 2:  # the grammar and one rule: combine_bits of two, inline
            return self.tensors([a & b or a for a, b in zip(*masks)])
        return self.tensors([combine_bits(row) for row in zip(*masks)])

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        for c in self.constraints:
            logits = c.steer(logits)
        return logits

    def update(self, token: torch.Tensor) -> None:
        for c in self.constraints:
            c.update(token)
