"""Causal relative self-attention: one entry point, a C backend and the tensor-op reference.

Relative global attention (Huang et al. 2018, "Music Transformer", §3.4) adds to the
query-key scores a term ``S_rel[i, j] = q_i · E_r[dist(i, j)]``, one learned vector per
distance and head, distances past the table's ``max_rel`` rows sharing the last one. The
paper's "skewing" computes ``S_rel`` from ``Q E_rᵀ`` with one matmul, a pad and a reshape.

:func:`attention` is the only way the models run it, for training and for cached decoding
alike. :func:`backend` chooses, in one place, from the call's tensors:

* ``"c"`` — the compiled kernel (:mod:`midiforge.kernels.native`): when the library is loaded
  and the tensors are fp32 on the CPU. A whole sequence (training, the first pass over a
  primer) goes through its forward/backward kernel; one new token against a cache, without
  gradients, through its decoding step, which also writes the token's key and value.
* ``"tensor-ops"`` — :func:`reference`, the paper's formulation in tensor ops (the relative
  scores as an additive bias to ``scaled_dot_product_attention``): every other case (CUDA,
  other dtypes, gradients through a cached step, no library). The tests compare the C kernel
  against it, and it serves positionless attention too (``table`` None: no bias).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F

from midiforge.kernels import native
from midiforge.kernels.native import split_heads

Backend = Literal["c", "tensor-ops"]


def skew(qe: torch.Tensor) -> torch.Tensor:
    """Rearrange ``Q E_rᵀ`` into ``S_rel`` with a pad and a reshape (Music Transformer, Fig. 1).

    Parameters
    ----------
    qe : (B, H, T_q, T_k); column ``r`` holds ``q_i · E[T_k - 1 - r]`` (distance ``T_k - 1 - r``)

    Returns
    -------
    (B, H, T_q, T_k): entry ``[i, j] = q_i · E[p_i - j]`` with ``p_i = T_k - T_q + i`` the
    absolute position of query ``i``; valid for ``j <= p_i`` (the causal part; the rest is
    masked anyway). ``T_q == T_k`` is exactly the paper's procedure; ``T_q < T_k`` the cached
    decoding case.
    """
    b, h, t_q, t_k = qe.shape
    padded = F.pad(qe, (1, 0))  # (B, H, T_q, T_k + 1)
    return padded.view(b, h, t_q * (t_k + 1))[..., t_q:].view(b, h, t_q, t_k)


def distance_rows(table: torch.Tensor, t_k: int) -> torch.Tensor:
    """Rows of ``table`` (H, max_rel, Dh) for distances ``T_k-1, ..., 1, 0``: (H, T_k, Dh).

    The table is stored in descending distance order (row ``r`` = distance ``max_rel-1-r``), so
    up to ``max_rel`` keys this is a view of its last rows; longer distances repeat row 0.
    """
    max_rel = table.shape[1]
    if t_k <= max_rel:
        return table[:, max_rel - t_k :]
    far = table[:, :1].expand(-1, t_k - max_rel, -1)  # distances >= max_rel
    return torch.cat([far, table], dim=1)


def reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rows: torch.Tensor | None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """``softmax((Q Kᵀ + skew(Q E_rᵀ)) / √Dh, causal) V`` in tensor ops: (B, H, T_q, Dh).

    ``q`` (B, H, T_q, Dh) are the last ``T_q`` of ``T_k`` positions; ``k``, ``v`` (B, H, T_k, Dh);
    ``rows`` (H, T_k, Dh) from :func:`distance_rows`, or None for attention without relative
    positions; ``dropout`` on the attention weights.
    """
    t_q, t_k = q.shape[2], k.shape[2]
    if rows is None and t_q in (1, t_k):  # one query sees every key, or plain causal
        return F.scaled_dot_product_attention(q, k, v, is_causal=t_q > 1, dropout_p=dropout)
    seen = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(t_k - t_q)
    if rows is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=seen, dropout_p=dropout)
    bias = skew(q @ rows.transpose(1, 2)) * q.shape[-1] ** -0.5  # (B, H, T_q, T_k)
    bias = bias.masked_fill(~seen, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)


_off = 0  # depth of open tensor_ops_only() blocks


@contextmanager
def tensor_ops_only() -> Iterator[None]:
    """Run the block on the tensor-op reference: for comparisons in tests and benchmarks."""
    global _off
    _off += 1
    try:
        yield
    finally:
        _off -= 1


def backend(qkv: torch.Tensor, table: torch.Tensor | None) -> Backend:
    """Which backend :func:`attention` runs for this projection and table (see module doc)."""
    ok = (
        table is not None
        and not _off
        and qkv.device.type == "cpu"
        and qkv.dtype == table.dtype == torch.float32
        and qkv.shape[-1] // 3 // table.shape[0] <= native.MAX_HEAD
        and native.library() is not None
    )
    return "c" if ok else "tensor-ops"


def cache_dtype(like: torch.Tensor, relative: bool) -> torch.dtype:
    """The dtype a decoding cache is best kept in for activations like ``like``: fp16 where
    the C decoding step reads it with hardware conversion (relative positions, fp32 on the
    CPU), else ``like``'s. A step's cost per cached position is reading keys, values and the
    table, so fp16 halves it; logits move by fp16 rounding (about 1e-3 relative)."""
    cpu32 = like.device.type == "cpu" and like.dtype == torch.float32
    return torch.float16 if relative and cpu32 and native.half_support() == 2 else like.dtype


def table_as(table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``table`` in ``dtype`` for a cache of that dtype, converted once per change of it (an
    optimizer step or a load bumps its version), not every decoding step. The copy is kept on
    the tensor itself, so it lives and dies with the model."""
    if table.dtype == dtype:
        return table
    key = (dtype, table.data_ptr(), table._version)
    kept = getattr(table, "_midiforge_converted", None)
    if kept is None or kept[0] != key:
        kept = (key, table.detach().to(dtype))
        table._midiforge_converted = kept
    return kept[1]


def reserve(buf: torch.Tensor | None, length: int, need: int, like: torch.Tensor,
            shape: tuple[int, int, int], dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    """A ``dtype`` buffer holding ``buf``'s first ``length`` positions with room for ``need``.

    ``buf`` itself when it already is one; otherwise a new ``(B, H, capacity, Dh)`` buffer
    (``shape`` = (B, H, Dh), on ``like``'s device) of at least double the old capacity, so
    appends stay amortised O(1), with the old positions copied (converted) into it.
    """
    if buf is not None and buf.shape[2] >= need and buf.dtype == dtype:
        return buf
    b, h, dh = shape
    capacity = max(need, 2 * buf.shape[2]) if buf is not None else need
    grown = like.new_empty(b, h, capacity, dh, dtype=dtype)
    if buf is not None and length:
        grown.narrow(2, 0, length).copy_(buf.narrow(2, 0, length))
    return grown


def _append(buf: torch.Tensor | None, new: torch.Tensor, length: int, dtype: torch.dtype):
    """``new`` (B, H, T, Dh) written after ``buf``'s first ``length`` positions; ``new`` itself
    when there is no past (training: no copy; a later decoding step converts it)."""
    if buf is None or length == 0:
        return new
    b, h, t, dh = new.shape
    buf = reserve(buf, length, length + t, new, (b, h, dh), dtype)
    buf.narrow(2, length, t).copy_(new)  # narrow: one op where slicing takes three
    return buf


KV = tuple[torch.Tensor, torch.Tensor]  # one layer's key and value buffers (B, H, capacity, Dh)


def attention(
    qkv: torch.Tensor,
    n_heads: int,
    table: torch.Tensor | None,
    past: KV | None = None,
    length: int = 0,
    kv_dtype: torch.dtype | None = None,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, KV]:
    """Causal relative self-attention of new tokens over themselves and a cache.

    Parameters
    ----------
    qkv : (B, T, 3·D) the fused query/key/value projection of the T new tokens
    n_heads : heads H (D = H · Dh)
    table : (H, max_rel, Dh) relative embeddings, descending distance; None = no positions
    past, length : cached key/value buffers, the first ``length`` positions filled (or None)
    kv_dtype : dtype the buffers are kept in once decoding appends (default: ``qkv``'s)
    dropout : probability of dropping an attention weight (0 in eval)

    Returns
    -------
    The output (B, T, D), heads merged, and the buffers extended by the new keys and values.
    A buffer is written in place when it has room, so a cache is consumed by the call that
    extends it.
    """
    b, t_q, three_d = qkv.shape
    d_head = three_d // (3 * n_heads)
    kv_dtype = kv_dtype or qkv.dtype
    fast = backend(qkv, table) == "c"
    if fast and t_q == 1 and dropout == 0.0 and _step_ok(qkv, table, kv_dtype):
        # one token: the C step writes its key and value into row `length` and attends
        shape = (b, n_heads, d_head)
        keys = reserve(past[0] if past else None, length, length + 1, qkv, shape, kv_dtype)
        values = reserve(past[1] if past else None, length, length + 1, qkv, shape, kv_dtype)
        y = native.decode_step(qkv, keys, values, length, table_as(table, kv_dtype))
        return y, (keys, values)
    q, k, v = split_heads(qkv, n_heads)  # 3 × (B, H, T, Dh) views
    keys = _append(past[0] if past else None, k, length, kv_dtype)  # (B, H, capacity, Dh)
    values = _append(past[1] if past else None, v, length, kv_dtype)
    if fast and length == 0:  # a whole sequence: the C kernel reads q, k, v in place
        rows = distance_rows(table, t_q)
        return native.NativeRelativeAttention.apply(qkv, rows, n_heads, dropout), (keys, values)
    t_k = length + t_q
    k, v = keys.narrow(2, 0, t_k), values.narrow(2, 0, t_k)  # (B, H, T_k, Dh) views
    if k.dtype != q.dtype:  # a reduced-precision cache
        k, v = k.to(q.dtype), v.to(q.dtype)
    rows = distance_rows(table, t_k) if table is not None else None
    y = reference(q, k, v, rows, dropout)  # (B, H, T_q, Dh)
    return y.transpose(1, 2).reshape(b, t_q, three_d // 3), (keys, values)


def _step_ok(qkv: torch.Tensor, table: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the C decoding step may run: it has no backward, and reads fp32 or fp16."""
    if torch.is_grad_enabled() and (qkv.requires_grad or table.requires_grad):
        return False
    return dtype == torch.float32 or (dtype == torch.float16 and native.half_support() > 0)
