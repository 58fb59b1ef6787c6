"""The contract every model family fulfils, and nothing more.

A model maps a batch to a dict of losses and exposes what its sampler needs; it holds no
training logic (that lives once, in :mod:`midiforge.training.trainer`). See
``docs/architecture.md`` for the batch formats.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn


class MidiModel(nn.Module):
    """Base class of every model family.

    Subclasses set ``name``, ``encoding``, ``sampler`` and ``config_class`` and take their
    config dataclass as the only constructor argument, so a checkpoint's saved config rebuilds
    the model exactly. ``encoding`` says which dataset arrays the model trains on and
    ``sampler`` which sampling routine writes its music; every front end reads these two
    declarations instead of guessing from the family's name.
    """

    name: ClassVar[str] = ""
    encoding: ClassVar[Literal["tokens", "notes"]] = "tokens"
    # "tokens": next-token sampling over a tokenizer's vocabulary; "notes": autoregressive
    # note rows with one head per field; "diffusion": windows of notes denoised at once
    sampler: ClassVar[Literal["tokens", "notes", "diffusion"]] = "tokens"
    config_class: ClassVar[type] = object

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return ``{"loss": scalar to optimize, ...other named scalars to log}``."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimizer; ``lr_scale`` in a group multiplies the base lr."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def prepare_data(self, dataset: Any) -> dict[str, Any]:
        """Fit what depends on the training data (e.g. feature scaling); return it JSON-able."""
        return {}

    def load_data_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`prepare_data` returned."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
