"""Decoder-only Transformer with Music Transformer relative attention (registry: ``transformer``).

Relative global attention (Huang et al. 2018, "Music Transformer", §3.4) adds to the usual
query-key scores a term ``S_rel[i, j] = q_i · E_r[dist(i, j)]`` with one learned embedding per
distance (per head), distances past ``max_rel`` sharing the last one. The "skewing" procedure
computes ``S_rel`` from ``Q E_rᵀ`` with one matmul, a pad and a reshape — O(T·D) memory
instead of the O(T²·D) of gathering an embedding per (i, j) pair. ``pos="absolute"`` swaps it for
learned absolute position embeddings, for ablations. Pre-norm blocks, tied input/output
embedding, optional style-label conditioning.

Decoding uses a key/value cache. Because relative attention needs only distances, the cache
can be cut to its last W entries and decoding continues past the training context; with absolute
positions the sampler recomputes the window instead (see :meth:`TransformerModel.trim_cache`).
On the CPU a relative decoding step is one C call per layer (write the new key and value, attend
every head), and the cache is kept in fp16 there by default (:meth:`TransformerModel.cache_dtype`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from midiforge.errors import MidiforgeError, choice_error
from midiforge.models import relative_attention_native as native
from midiforge.models.base import MidiModel
from midiforge.models.relative_attention import (
    RelativeEmbedding,
    causal_relative_attention,
)
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
    the sampler has trimmed the cache.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0
    seen: int = 0


def reserve(
    buf: torch.Tensor | None,
    length: int,
    need: int,
    shape: tuple[int, int, int],
    like: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A ``dtype`` buffer holding ``buf``'s first ``length`` positions with room for ``need``.

    ``buf`` itself when it already is one; otherwise a new ``(B, H, capacity, Dh)`` buffer
    (``shape`` = (B, H, Dh), on ``like``'s device) with at least double the old capacity, so
    appends stay amortised O(1), and the old positions copied (converted) into it.
    """
    if buf is not None and buf.shape[2] >= need and buf.dtype == dtype:
        return buf
    b, h, dh = shape
    capacity = max(need, 2 * buf.shape[2]) if buf is not None else need
    grown = like.new_empty(b, h, capacity, dh, dtype=dtype)
    if buf is not None and length:
        grown.narrow(2, 0, length).copy_(buf.narrow(2, 0, length))
    return grown


def append_kv(
    buf: torch.Tensor | None, new: torch.Tensor, length: int, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Write ``new`` ``(B, H, T, Dh)`` after the first ``length`` positions of ``buf``.

    Returns the buffer (in ``dtype``, default ``buf``'s; a larger or converted copy when
    needed), or ``new`` itself when there is no past, which is the training path: no extra copy
    (a later decoding step converts it if the cache wants another dtype).
    """
    if buf is None or length == 0:
        return new
    b, h, t, dh = new.shape
    buf = reserve(buf, length, length + t, (b, h, dh), new, dtype or buf.dtype)
    buf.narrow(2, length, new.shape[2]).copy_(new)  # narrow: one op where slicing takes three
    return buf


class Attention(nn.Module):
    """Causal multi-head self-attention, relative or plain, with an optional KV cache."""

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
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        length: int,
        kv_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attend ``x`` ``(B, T_q, D)`` to itself and the first ``length`` cached positions.

        Returns the output and the key/value buffers extended by ``x``'s keys and values, kept
        in ``kv_dtype`` (default: ``x``'s) once decoding appends to them.
        """
        b, t_q, d = x.shape
        qkv = self.qkv(x)  # (B, T_q, 3·D)
        drop = self.dropout if self.training else 0.0
        q, k, v = native.split_heads(qkv, self.n_heads)  # 3 × (B, H, T_q, Dh) views
        kbuf = append_kv(past[0] if past else None, k, length, kv_dtype)  # (B, H, capacity, Dh)
        vbuf = append_kv(past[1] if past else None, v, length, kv_dtype)
        t_k = length + t_q
        k, v = kbuf.narrow(2, 0, t_k), vbuf.narrow(2, 0, t_k)  # (B, H, T_k, Dh) views
        if k.dtype != q.dtype:  # a reduced-precision cache read by the tensor ops
            k, v = k.to(q.dtype), v.to(q.dtype)
        if self.rel is not None and length == 0 and t_q > 1 and native.usable(x, self.d_head):
            # training and the first pass over a primer: the C kernel reads q, k, v where the
            # projection wrote them and returns the heads merged
            y = native.native_relative_attention(qkv, self.rel(t_q), self.n_heads, drop)
            return self.proj(y), (kbuf, vbuf)
        if self.rel is not None and t_q == 1:
            # one new query sees every key and skew is the identity: its relative scores are
            # q·E[dist_j] with E's rows already in key order. Two matmuls over views (the cache
            # and the table) and no (B, H, T_k, Dh) temporary: per-token cost grows only by
            # reading K, E and V.
            # head-major: the relative scores of all B queries of a head are one product with
            # that head's table; the key scores are added inside the second product, both
            # scaled by its alpha and beta. Few ops, as a decoding step pays for each.
            h, dh = self.n_heads, self.d_head
            table = self.rel.forward(t_k).transpose(1, 2)  # (H, Dh, T_k)
            rel = torch.bmm(q.transpose(0, 1).reshape(h, b, dh), table)  # (H, B, T_k)
            rel = rel.transpose(0, 1).reshape(b * h, 1, t_k)  # a view when B == 1
            keys = k.reshape(b * h, t_k, dh)  # a view of the cache
            scale = dh**-0.5
            scores = torch.baddbmm(rel, q.reshape(b * h, 1, dh), keys.transpose(1, 2),
                                   beta=scale, alpha=scale)  # fmt: skip
            weights = torch.softmax(scores, dim=-1).view(b, self.n_heads, 1, t_k)
            if drop > 0.0:
                weights = F.dropout(weights, drop)
            y = torch.matmul(weights, v)  # (B, H, 1, Dh)
        elif self.rel is not None:
            y = causal_relative_attention(q, k, v, self.rel, drop)  # (B, H, T_q, Dh)
        elif t_q == t_k or t_q == 1:  # all-causal, or one query that sees every key
            y = F.scaled_dot_product_attention(q, k, v, is_causal=t_q > 1, dropout_p=drop)
        else:
            causal = torch.ones(t_q, t_k, dtype=torch.bool, device=x.device).tril(t_k - t_q)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, dropout_p=drop)
        y = y.transpose(1, 2).reshape(b, t_q, d)  # (B, T_q, D)
        return self.proj(y), (kbuf, vbuf)

    def step(
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        length: int,
        kv_dtype: torch.dtype,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoding step ``x`` ``(B, 1, D)`` with the C kernel (see ``native_step``): one
        call writes the new key and value into the cache and attends every head, reading each
        cached row once. Returns what :meth:`forward` returns."""
        b = x.shape[0]
        qkv = self.qkv(x)  # (B, 1, 3·D)
        shape = (b, self.n_heads, self.d_head)
        kbuf = reserve(past[0] if past else None, length, length + 1, shape, x, kv_dtype)
        vbuf = reserve(past[1] if past else None, length, length + 1, shape, x, kv_dtype)
        y = native.decode_step(qkv, kbuf, vbuf, length, self.rel.table_as(kv_dtype))
        return F.linear(y, self.proj.weight, self.proj.bias), (kbuf, vbuf)


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

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

    def forward(self, x, past, length, kv_dtype=None):
        a, kv = self.attn(self.norm1(x), past, length, kv_dtype)
        if self.training:  # dropout is the identity in eval; skipping the calls saves decode time
            x = x + self.drop(a)
            return x + self.drop(self.mlp(self.norm2(x))), kv
        x = x + a
        return x + self.mlp(self.norm2(x)), kv

    def step(self, x, past, length, kv_dtype):
        """:meth:`forward` for one token in eval, through :meth:`Attention.step`. The same
        computation as direct functional calls: at batch 1 a decoding step is mostly fixed
        per-call cost, and the module calls this saves were ~8% of a step (docs/benchmarks.md)."""
        n1, n2, (fc1, act, fc2) = self.norm1, self.norm2, self.mlp
        a, kv = self.attn.step(F.layer_norm(x, n1.normalized_shape, n1.weight, n1.bias, n1.eps),
                               past, length, kv_dtype)  # fmt: skip
        x = x + a
        h = F.layer_norm(x, n2.normalized_shape, n2.weight, n2.bias, n2.eps)
        h = F.gelu(F.linear(h, fc1.weight, fc1.bias), approximate=act.approximate)
        return x + F.linear(h, fc2.weight, fc2.bias), kv


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
        # dtype of the decoding cache; None = automatic (see cache_dtype). Not a config field:
        # it changes how a trained model is run, not the model.
        self.kv_dtype: torch.dtype | None = None
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
        cache : what the previous call returned, or None to start from an empty context
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
        kv_dtype = self.cache_dtype(x)
        step = t == 1 and self.native_step(x, kv_dtype)
        for i, block in enumerate(self.blocks):
            past = (cache.keys[i], cache.values[i]) if cache is not None else None
            if step:
                x, (k, v) = block.step(x, past, length, kv_dtype)
            else:
                x, (k, v) = block(x, past, length, kv_dtype)
            keys.append(k)
            values.append(v)
        logits = self.head(self.norm(x))  # (B, T, V)
        return logits, KVCache(keys, values, length + t, seen + t)

    def native_step(self, x: torch.Tensor, kv_dtype: torch.dtype) -> bool:
        """Whether a one-token step on ``x`` runs through the C decoding kernel (relative
        positions, eval, fp32 on the CPU, a cache dtype the kernel reads)."""
        layer = self.blocks[0].attn
        return (
            layer.rel is not None
            and not self.training
            and native.usable(x, layer.d_head)
            and (kv_dtype == x.dtype or (kv_dtype == torch.float16 and native.half_support() > 0))
        )

    def cache_dtype(self, x: torch.Tensor) -> torch.dtype:
        """The dtype decoding keeps keys and values in: :attr:`kv_dtype` when set, else fp16
        where the C decoding kernel reads it with hardware conversion (fp32 on the CPU,
        relative positions, eval), else ``x``'s. A step's cost per cached position is reading
        the cache and the relative table, so fp16 halves it; logits move by fp16 rounding of
        keys and values (about 1e-3 relative), and ``kv_dtype = torch.float32`` is exact."""
        if self.kv_dtype is not None:
            return self.kv_dtype
        if native.half_support() == 2 and self.native_step(x, torch.float16):
            return torch.float16
        return x.dtype

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
        return KVCache(keys, values, end - start, cache.seen)

    def select_cache(self, cache: KVCache, index: torch.Tensor) -> KVCache:
        """Keep the batch rows ``index`` of the cache."""
        return KVCache(
            [k.index_select(0, index) for k in cache.keys],
            [v.index_select(0, index) for v in cache.values],
            cache.length,
            cache.seen,
        )
