"""Decoder-only Transformer with Music Transformer relative attention (registry: ``transformer``).

Relative global attention (Huang et al. 2018, "Music Transformer", §3.4) adds to the usual
query-key scores a term ``S_rel[i, j] = q_i · E_r[dist(i, j)]`` with one learned embedding per
distance (per head), distances past ``max_rel`` sharing the last one; it runs through
:func:`midiforge.kernels.relative_attention.attention`, the one entry point (the C kernel on an
fp32 CPU, else its tensor-op reference). ``pos="absolute"`` swaps it for learned absolute
position embeddings, for ablations. Pre-norm blocks, tied input/output embedding, optional
style-label conditioning.

Decoding uses a key/value cache (:meth:`TransformerModel.new_cache`), fed through the same
forward as training. Because relative attention needs only distances, the cache can be cut to
its last W entries and decoding continues past the training context; with absolute positions
the sampler recomputes the window instead (see :meth:`TransformerModel.trim_cache`). On the CPU
the cache is kept in fp16 by default, where the C decoding step reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from midiforge.errors import MidiforgeError, choice_error
from midiforge.kernels.relative_attention import KV, attention, cache_dtype
from midiforge.models.base import MidiModel
from midiforge.models.token_lm import LabelEmbedding, next_token_loss, split_batch

POSITIONS = ("relative", "absolute")


@dataclass
class TransformerConfig:
    """Size, positions and regularisation of the transformer; the constructor's arguments."""

    vocab_size: int = 0  # filled by the trainer from the dataset's tokenizer.vocab_size
    max_seq_len: int = 1024  # training context in tokens (absolute: the position table's size)
    d_model: int = 256  # residual stream width
    n_layers: int = 4  # transformer blocks
    n_heads: int = 8  # attention heads; d_model must divide by it
    d_ff: int = 1024  # feed-forward hidden width
    dropout: float = 0.1  # on embeddings, attention weights and residual branches
    pos: Literal["relative", "absolute"] = "relative"  # position scheme
    max_rel: int = 1024  # learned relative distances 0..max_rel-1; longer ones clip to the last
    n_labels: int = 0  # style labels for conditioning; 0 = unconditional model
    label_dropout: float = 0.0  # probability of training a labelled window as unlabelled


@dataclass
class KVCache:
    """Per-layer key and value buffers ``(B, H, capacity, D_head)``, the first ``length`` filled.

    Buffers grow by doubling and new positions are written in place, so a decoding step copies
    nothing old (amortised O(1) per token instead of re-concatenating the whole cache). A cache
    is therefore consumed by the call that extends it: to branch, copy it first. ``seen`` counts
    every token fed so far (the absolute position of the next one); it exceeds ``length`` once
    the sampler has trimmed the cache. ``dtype`` is what decoding keeps keys and values in
    (None: the activations' dtype); an empty cache from :meth:`TransformerModel.new_cache`
    carries it into the first call.
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    length: int = 0
    seen: int = 0
    dtype: torch.dtype | None = None

    def layer(self, i: int) -> KV | None:
        """Layer ``i``'s buffers, or None before the first call."""
        return (self.keys[i], self.values[i]) if self.keys else None


class RelativeEmbedding(nn.Module):
    """One learned vector per head and distance 0..max_rel-1, ``E_r`` in the paper.

    Stored in *descending* distance order (row ``r`` = distance ``max_rel - 1 - r``), so the rows
    a key length ``T_k <= max_rel`` needs are the table's last ``T_k`` rows: a view, no gather.
    """

    def __init__(self, n_heads: int, d_head: int, max_rel: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(n_heads, max_rel, d_head) * d_head**-0.5)


class Attention(nn.Module):
    """Causal multi-head self-attention, relative or plain, over new tokens and a KV cache."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_head = cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        self.rel = (
            RelativeEmbedding(cfg.n_heads, self.d_head, cfg.max_rel)
            if cfg.pos == "relative"
            else None
        )

    def forward(
        self, x: torch.Tensor, past: KV | None, length: int, kv_dtype: torch.dtype | None
    ) -> tuple[torch.Tensor, KV]:
        """Attend ``x`` ``(B, T, D)`` to itself and the first ``length`` cached positions;
        returns the output and the buffers extended by ``x``'s keys and values (``kv_dtype``)."""
        table = self.rel.table if self.rel is not None else None
        drop = self.dropout if self.training else 0.0
        y, kv = attention(self.qkv(x), self.n_heads, table, past, length, kv_dtype, drop)
        return F.linear(y, self.proj.weight, self.proj.bias), kv  # (B, T, D)


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)); training and decoding alike."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff),
            nn.GELU(),
            nn.Linear(cfg.d_ff, cfg.d_model),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        past: KV | None = None,
        length: int = 0,
        kv_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, KV]:
        """``x`` ``(B, T, D)`` after the block, and the layer's extended key/value buffers.

        Norms and MLP are direct functional calls on the modules' weights: at batch 1 a
        decoding step is mostly fixed per-call cost, and module calls were ~8% of it.
        """
        n1, n2, (fc1, act, fc2) = self.norm1, self.norm2, self.mlp
        h = F.layer_norm(x, n1.normalized_shape, n1.weight, n1.bias, n1.eps)
        a, kv = self.attn(h, past, length, kv_dtype)
        x = x + (self.drop(a) if self.training else a)
        h = F.layer_norm(x, n2.normalized_shape, n2.weight, n2.bias, n2.eps)
        h = F.gelu(F.linear(h, fc1.weight, fc1.bias), approximate=act.approximate)
        h = F.linear(h, fc2.weight, fc2.bias)
        return x + (self.drop(h) if self.training else h), kv


class TransformerModel(MidiModel):
    """Decoder-only token transformer (registry name ``transformer``)."""

    name: ClassVar[str] = "transformer"
    encoding: ClassVar[str] = "tokens"
    sampler: ClassVar[str] = "tokens"
    config_class: ClassVar[type] = TransformerConfig

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        if config.vocab_size <= 0:
            raise MidiforgeError(
                f"model transformer: vocab_size must be set (got {config.vocab_size}); "
                "the trainer fills it from the dataset manifest"
            )
        if config.pos not in POSITIONS:
            raise choice_error("model transformer: pos", config.pos, POSITIONS)
        if config.d_model % config.n_heads:
            raise MidiforgeError(
                f"model transformer: d_model={config.d_model} must be a multiple of "
                f"n_heads={config.n_heads}"
            )
        self.max_seq_len = config.max_seq_len
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_embed = (
            nn.Embedding(config.max_seq_len, config.d_model) if config.pos == "absolute" else None
        )
        self.labels = (
            LabelEmbedding(config.n_labels, config.d_model, config.label_dropout)
            if config.n_labels > 0
            else None
        )
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # weight tying
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        label: torch.Tensor | int | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Next-token logits after each input token, and the cache extended by them.

        Parameters
        ----------
        tokens : (B, T) long; with a cache, only the tokens not yet fed
        label : (B,) long, an int for the whole batch, or None; -1 = no label
        cache : what the previous call returned; :meth:`new_cache` to start decoding with a
            chosen cache dtype; None to start from an empty context, keys and values as computed
        """
        b, t = tokens.shape
        seen = cache.seen if cache is not None else 0
        length = cache.length if cache is not None else 0
        x = self.embed(tokens)  # (B, T, D)
        if self.pos_embed is not None:
            if seen + t > self.max_seq_len:
                raise MidiforgeError(
                    f"transformer with absolute positions: {seen + t} tokens exceed "
                    f"max_seq_len={self.max_seq_len}; sample with a window <= max_seq_len"
                )
            x = x + self.pos_embed(torch.arange(seen, seen + t, device=tokens.device))
        if self.labels is not None:
            x = x + self.labels(label, b, tokens.device)
        if self.training:
            x = self.drop(x)
        keys, values = [], []
        kv_dtype = cache.dtype if cache is not None else None
        for i, block in enumerate(self.blocks):
            past = cache.layer(i) if cache is not None else None
            x, (k, v) = block(x, past, length, kv_dtype)
            keys.append(k)
            values.append(v)
        logits = self.head(self.norm(x))  # (B, T, V)
        return logits, KVCache(keys, values, length + t, seen + t, kv_dtype)

    def new_cache(self, dtype: torch.dtype | None = None) -> KVCache:
        """An empty cache for decoding whose keys and values are kept in ``dtype``.

        None chooses: fp16 where the C decoding step reads it with hardware conversion
        (relative positions, fp32 on the CPU), else the model's dtype. A step's cost per
        cached position is reading the cache and the relative table, so fp16 halves it;
        logits move by fp16 rounding of keys and values (about 1e-3 relative), and
        ``torch.float32`` is exact. Pass it as ``cache=`` to the first call.
        """
        if dtype is None:
            dtype = cache_dtype(self.embed.weight, self.pos_embed is None)
        return KVCache(dtype=dtype)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs, targets, mask, label = split_batch(batch)
        logits, _ = self(inputs, label=label)
        return {"loss": next_token_loss(logits, targets, mask)}

    def trim_cache(self, cache: KVCache, keep: int) -> KVCache | None:
        """Keep the last ``keep`` cached positions, or None when the window must be recomputed.

        With relative attention a query only sees distances, so dropping the oldest keys and
        values is the same as never having attended to them: decoding continues past
        ``max_seq_len``. Absolute positions index a table of ``max_seq_len`` rows, so the
        sampler re-feeds the last ``keep`` tokens from position 0 instead (returns None).
        """
        if self.pos_embed is not None:
            return None
        start, end = max(0, cache.length - keep), cache.length
        # views that run to the end of each buffer: the free slots after `end` take the next
        # appends in place, so a sliding window copies its W entries once per ~W steps (when a
        # buffer fills and grows), not on every step
        keys = [k[:, :, start:] for k in cache.keys]  # (B, H, capacity - start, Dh)
        values = [v[:, :, start:] for v in cache.values]
        return KVCache(keys, values, end - start, cache.seen, cache.dtype)

    def select_cache(self, cache: KVCache, index: torch.Tensor) -> KVCache:
        """Keep the batch rows ``index`` of the cache."""
        return KVCache(
            [k.index_select(0, index) for k in cache.keys],
            [v.index_select(0, index) for v in cache.values],
            cache.length,
            cache.seen,
            cache.dtype,
        )
