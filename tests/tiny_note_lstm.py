"""A tiny multi-head LSTM trained on a made-up note corpus: the learning tests of the note
LSTM's inputs and heads (each builds a corpus that only the part under test can learn)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from midiforge.models import registry

TINY = {"d_pitch": 32, "d_hidden": 64, "n_layers": 1, "dropout": 0.0}


def trained(corpus: Callable[[int, int, int], torch.Tensor], **config: Any) -> torch.nn.Module:
    """The tiny model (``config`` over :data:`TINY`) after 150 Adam steps of 16 windows × 32
    notes from ``corpus(n, length, seed)``, a new seed each step; in eval mode."""
    torch.manual_seed(0)
    model = registry.build("lstm-multihead", {**TINY, **config})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        loss = model.loss({"notes": corpus(16, 32, step)})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
