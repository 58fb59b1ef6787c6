"""Pieces every token language model shares: label conditioning and the masked next-token loss.

The transformer and the RNNs differ only in their sequence core; how a style label enters the
model and how the loss reads a batch (``docs/architecture.md``: ``tokens [B, T + 1]``, ``mask
[B, T]``, ``label [B]``) is written once here so the families cannot drift apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from midiforge.schema import NO_LABEL


class LabelEmbedding(nn.Module):
    """A learned vector per style label, added to every input embedding.

    Index ``n_labels`` is reserved for "no label", so label ``-1`` (unlabelled files, and
    unconditional sampling) has its own learned vector. With ``label_dropout > 0`` a training
    label is replaced by "no label" with that probability, which teaches the unconditional
    vector on labelled data as well (as in classifier-free guidance).
    """

    def __init__(self, n_labels: int, dim: int, label_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_labels = n_labels
        self.label_dropout = label_dropout
        self.table = nn.Embedding(n_labels + 1, dim)

    def forward(self, label: torch.Tensor | int | None, batch: int, device: torch.device):
        """Return the label vectors ``(B, 1, dim)`` to add to ``(B, T, dim)`` embeddings."""
        if label is None:
            label = NO_LABEL
        if not isinstance(label, torch.Tensor):
            # one label for the batch (sampling): checked in Python and read as a row of the
            # table, two ops where the tensor path below takes a dozen, every decoding step
            value = int(label)
            if not NO_LABEL <= value < self.n_labels:
                raise ValueError(f"label values must lie in -1..{self.n_labels - 1}; got {value}")
            if not (self.training and self.label_dropout > 0):
                row = self.n_labels if value == NO_LABEL else value
                return self.table.weight[row].expand(batch, 1, -1)  # (B, 1, dim)
            label = torch.full((batch,), value, dtype=torch.long, device=device)
        label = label.to(device=device, dtype=torch.long).reshape(-1).expand(batch)  # (B,)
        if label.min() < NO_LABEL or label.max() >= self.n_labels:
            raise ValueError(
                f"label values must lie in -1..{self.n_labels - 1}; got {label.tolist()}"
            )
        label = torch.where(label < 0, torch.full_like(label, self.n_labels), label)
        if self.training and self.label_dropout > 0:
            drop = torch.rand(label.shape, device=device) < self.label_dropout
            label = torch.where(drop, torch.full_like(label, self.n_labels), label)
        return self.table(label)[:, None, :]  # (B, 1, dim)


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor):
    """Mean cross-entropy over the targets that ``mask`` marks.

    Parameters
    ----------
    logits : (B, T, V) float
    targets : (B, T) long, the input shifted by one (``tokens[:, 1:]``)
    mask : (B, T) bool, True where the target counts (padding and context-only tokens do not)
    """
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    weights = mask.flatten().to(ce.dtype)  # (B*T,)
    return (ce * weights).sum() / weights.sum().clamp_min(1.0)


def split_batch(batch: dict[str, torch.Tensor]):
    """Inputs ``(B, T)``, targets ``(B, T)``, mask ``(B, T)`` and labels ``(B,)|None``."""
    tokens = batch["tokens"].long()  # (B, T + 1)
    mask = batch.get("mask")
    if mask is None:
        mask = torch.ones_like(tokens[:, 1:], dtype=torch.bool)
    return tokens[:, :-1], tokens[:, 1:], mask.bool(), batch.get("label")
