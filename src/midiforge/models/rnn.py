"""Recurrent token language models: embedding → stacked LSTM/GRU → linear over the vocabulary.

The recurrent state is the decoding cache, so sampling feeds one token at a time at constant
cost per token and with no limit on length. Registered as ``lstm`` and ``gru``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from midiforge.errors import MidiforgeError
from midiforge.models import limits
from midiforge.models.base import MidiModel
from midiforge.models.token_lm import LabelEmbedding, next_token_loss, split_batch

RNNState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU h | LSTM (h, c), (L, B, H)


@dataclass
class RNNConfig:
    """Size and regularisation of a recurrent token model; the constructor's arguments."""

    vocab_size: int = 0  # filled by the trainer from the dataset's tokenizer.vocab_size
    d_embed: int = 256  # token embedding width
    d_hidden: int = 512  # recurrent state width per layer
    n_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.1  # between layers and before the output projection
    tie_weights: bool = True  # share embedding and output matrix (only when d_embed == d_hidden)
    n_labels: int = 0  # style labels for conditioning; 0 = unconditional model
    label_dropout: float = 0.0  # probability of training a labelled window as unlabelled

    def check(self, where: str = "") -> None:
        """Refuse values outside their ranges (see :mod:`midiforge.models.limits`)."""
        limits.check_int(where, "vocab_size", self.vocab_size, 1, limits.MAX_VOCAB)
        limits.check_int(where, "d_embed", self.d_embed, 1, limits.MAX_WIDTH)
        limits.check_int(where, "d_hidden", self.d_hidden, 1, limits.MAX_WIDTH)
        limits.check_int(where, "n_layers", self.n_layers, 1, limits.MAX_LAYERS)
        limits.check_dropout(where, "dropout", self.dropout)
        limits.check_labels(where, self)


class _RecurrentLM(MidiModel):
    """Shared body of ``lstm`` and ``gru``; subclasses choose the recurrent cell."""

    encoding: ClassVar[str] = "tokens"
    sampler: ClassVar[str] = "tokens"
    config_class: ClassVar[type] = RNNConfig
    cell: ClassVar[type[nn.Module]] = nn.LSTM
    max_seq_len: ClassVar[int | None] = None  # the state carries any length

    def __init__(self, config: RNNConfig) -> None:
        super().__init__(config)
        if config.vocab_size <= 0:
            raise MidiforgeError(
                f"model {self.name}: vocab_size must be set (got {config.vocab_size}); "
                "the trainer fills it from the dataset manifest"
            )
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        self.labels = (
            LabelEmbedding(config.n_labels, config.d_embed, config.label_dropout)
            if config.n_labels > 0
            else None
        )
        self.rnn = self.cell(
            config.d_embed,
            config.d_hidden,
            num_layers=config.n_layers,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.d_hidden, config.vocab_size)
        if config.tie_weights and config.d_embed == config.d_hidden:
            self.head.weight = self.embed.weight

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        label: torch.Tensor | int | None = None,
        cache: RNNState | None = None,
    ) -> tuple[torch.Tensor, RNNState]:
        """Logits for the next token after each input, and the state after the last one.

        Parameters
        ----------
        tokens : (B, T) long
        label : (B,) long, an int for the whole batch, or None; -1 = no label
        cache : the state returned by the previous call, or None to start fresh
        """
        x = self.embed(tokens)  # (B, T, E)
        if self.labels is not None:
            x = x + self.labels(label, tokens.shape[0], tokens.device)
        h, state = self.rnn(self.drop(x), cache)  # (B, T, H)
        return self.head(self.drop(h)), state  # (B, T, V)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs, targets, mask, label = split_batch(batch)
        logits, _ = self(inputs, label=label)
        return {"loss": next_token_loss(logits, targets, mask)}

    def trim_cache(self, cache: RNNState, keep: int) -> RNNState:
        """A recurrent state already summarises the past; nothing to trim."""
        return cache

    def select_cache(self, cache: RNNState, index: torch.Tensor) -> RNNState:
        """Keep the batch rows ``index`` of the state (the batch is dim 1)."""
        if isinstance(cache, tuple):
            return tuple(s.index_select(1, index) for s in cache)  # type: ignore[return-value]
        return cache.index_select(1, index)


class LSTMModel(_RecurrentLM):
    """Token LSTM language model (registry name ``lstm``)."""

    name: ClassVar[str] = "lstm"
    cell: ClassVar[type[nn.Module]] = nn.LSTM


class GRUModel(_RecurrentLM):
    """Token GRU language model (registry name ``gru``)."""

    name: ClassVar[str] = "gru"
    cell: ClassVar[type[nn.Module]] = nn.GRU
