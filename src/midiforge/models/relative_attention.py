"""Music Transformer relative attention: the skew, the distance table, and a lean causal kernel.

Relative global attention (Huang et al. 2018, §3.4) adds to the query-key scores a term
``S_rel[i, j] = q_i · E_r[dist(i, j)]``, one learned vector per distance and head. The paper's
"skewing" computes ``S_rel`` from ``Q E_rᵀ`` with one matmul, a pad and a reshape.

Why a hand-written autograd function: written with ordinary tensor ops, autograd materialises
the pad, the sum of the two score matrices, the masked fill and the skew's inverse as separate
``(B, H, T_q, T_k)`` tensors in forward and backward, and those memory passes cost more than
the matmuls on a CPU. :class:`CausalRelativeAttention` gets the pad for free (a zero row in
front of ``E_r``, so the matmul writes the padded matrix), adds the relative scores inside the
score matmul (``baddbmm``), takes the softmax gradient's row sums from the small ``dy · y``
instead of the score matrix, and writes that gradient straight into the padded layout the
relative gradient needs. It also splits the queries into blocks that each see only the keys
before them, so most of the masked upper triangle is never computed — what a fused causal
kernel gets by skipping masked tiles. Measured in ``bench/train.py``; checked against the
plain autograd formulation in ``tests/models/test_relative_attention.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 64  # queries per block in the causal split; see causal_relative_attention

# Under CUDA bf16 autocast the kernel runs in fp32: its in-place and ``out=`` steps are not
# autocast-aware, and the backward must see the dtypes the forward saw.
if hasattr(torch.amp, "custom_fwd"):  # torch >= 2.4
    _forward_fp32 = torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    _backward_as_forward = torch.amp.custom_bwd(device_type="cuda")
else:  # pragma: no cover - older torch
    _forward_fp32 = torch.cuda.amp.custom_fwd(cast_inputs=torch.float32)
    _backward_as_forward = torch.cuda.amp.custom_bwd


def skew(qe: torch.Tensor) -> torch.Tensor:
    """Rearrange ``Q E_rᵀ`` into ``S_rel`` with a pad and a reshape (Music Transformer, Fig. 1).

    Parameters
    ----------
    qe : (B, H, T_q, T_k); column ``r`` holds ``q_i · E[T_k - 1 - r]`` (distance ``T_k - 1 - r``)

    Returns
    -------
    (B, H, T_q, T_k): entry ``[i, j] = q_i · E[p_i - j]`` with ``p_i = T_k - T_q + i`` the
    absolute position of query ``i``; valid for ``j <= p_i`` (the causal part; the rest is
    masked anyway). With ``T_q == T_k`` this is exactly the paper's procedure; ``T_q < T_k`` is
    the cached decoding case.
    """
    t_q, t_k = qe.shape[-2:]
    padded = F.pad(qe, (1, 0))  # (B, H, T_q, T_k + 1)
    return unpad(padded, t_q, t_k)


def unpad(padded: torch.Tensor, t_q: int, t_k: int) -> torch.Tensor:
    """The skew as a view: drop the first ``T_q`` entries of each padded matrix, reshape.

    ``padded`` is contiguous ``(B, H, T_q, T_k + 1)``; the result ``(B, H, T_q, T_k)`` shares
    its storage. The map is one-to-one onto all but the first ``T_q`` entries, which is what
    lets the backward pass write a gradient straight into the padded layout.
    """
    b, h = padded.shape[:2]
    return padded.view(b, h, t_q * (t_k + 1))[..., t_q:].view(b, h, t_q, t_k)


class RelativeEmbedding(nn.Module):
    """One learned vector per head and distance 0..max_rel-1, ``E_r`` in the paper.

    Stored in *descending* distance order (row ``r`` = distance ``max_rel - 1 - r``), so the rows
    a key length ``T_k <= max_rel`` needs are the table's last ``T_k`` rows: a view, no gather.
    """

    def __init__(self, n_heads: int, d_head: int, max_rel: int) -> None:
        super().__init__()
        self.max_rel = max_rel
        self.table = nn.Parameter(torch.randn(n_heads, max_rel, d_head) * d_head**-0.5)

    def table_as(self, dtype: torch.dtype) -> torch.Tensor:
        """The whole table in ``dtype``, for decoding from a cache of that dtype.

        A converted copy is kept and remade only when the parameter changes (an optimizer step
        or a load bumps its version), so decoding converts it once, not every step.
        """
        table = self.table
        if table.dtype == dtype:
            return table
        key = (dtype, table.data_ptr(), table._version)
        if getattr(self, "_converted_key", None) != key:
            self._converted = table.detach().to(dtype)
            self._converted_key = key
        return self._converted

    def forward(self, t_k: int) -> torch.Tensor:
        """Rows for distances ``T_k-1, ..., 1, 0`` (clipped to max_rel-1): ``(H, T_k, D_head)``."""
        if t_k <= self.max_rel:
            return self.table[:, self.max_rel - t_k :]
        far = self.table[:, :1].expand(-1, t_k - self.max_rel, -1)  # distances >= max_rel
        return torch.cat([far, self.table], dim=1)


def _blocks(t_q: int, t_k: int, block: int):
    """Yield ``(start, stop, seen)`` per block of queries: its rows, and the keys it can see.

    Queries are the last ``T_q`` of ``T_k`` positions, so the block ending at query ``stop``
    sees keys ``0 .. T_k - T_q + stop - 1``. Forward and backward walk the same blocks.
    """
    for start in range(0, t_q, block):
        stop = min(start + block, t_q)
        yield start, stop, t_k - t_q + stop


def _padded_rows(e: torch.Tensor, seen: int) -> torch.Tensor:
    """``E_r`` rows for distances ``seen-1 .. 0`` after a zero row: ``(H, seen + 1, Dh)``.

    The zero row makes ``Q E_padᵀ`` come out already padded for the skew (column 0 zero).
    """
    return F.pad(e[:, e.shape[1] - seen :], (0, 0, 1, 0))


class CausalRelativeAttention(torch.autograd.Function):
    """``softmax(Q Kᵀ + skew(Q E_rᵀ), causal) V``, block by block, with a hand-written backward.

    Inputs: ``q`` (B, H, T_q, Dh) unscaled; ``k``, ``v`` (B, H, T_k, Dh) with ``T_q <= T_k``,
    the queries being the last ``T_q`` positions; ``e`` (H, T_k, Dh) the relative rows for
    distances ``T_k-1 .. 0``; ``dropout`` the probability of dropping an attention weight;
    ``block`` queries per block.

    Work is laid out head-major, ``(H, B, T, Dh)``: every score matmul is batched over
    ``H·B`` either way, and this order makes the relative matmuls — one table per head, shared
    by the batch — single GEMMs over ``B·T`` rows instead of ``B·H`` small ones.
    """

    @staticmethod
    @_forward_fp32
    def forward(ctx, q, k, v, e, dropout, block):
        b, h, t_q, d_head = q.shape
        t_k = k.shape[2]
        scale = d_head**-0.5
        keep_scale = 1.0 / (1.0 - dropout)
        qh = (q.transpose(0, 1) * scale).contiguous()  # (H, B, T_q, Dh), scale folded in
        kh = k.transpose(0, 1).contiguous()  # (H, B, T_k, Dh)
        vh = v.transpose(0, 1).contiguous()
        y = qh.new_empty(h, b, t_q, d_head)
        saved = []
        for start, stop, seen in _blocks(t_q, t_k, block):
            n = stop - start
            qb = qh[:, :, start:stop].reshape(h, b * n, d_head)
            e_pad = _padded_rows(e, seen)  # (H, seen+1, Dh)
            padded = torch.matmul(qb, e_pad.transpose(1, 2))  # (H, B·n, seen+1), column 0 zero
            rel = unpad(padded.view(h, b, n, seen + 1), n, seen).reshape(h * b, n, seen)
            kb = kh[:, :, :seen].reshape(h * b, seen, d_head)
            scores = torch.baddbmm(rel, qb.view(h * b, n, d_head), kb.transpose(1, 2))
            del padded, rel
            if n > 1:  # query i sees keys up to its own position: only the last n keys hold
                # pairs to hide, so the mask covers that square alone
                future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu_(1)
                scores[:, :, seen - n :].masked_fill_(future, float("-inf"))
            weights = torch.softmax(scores, dim=-1)  # (H·B, n, seen)
            del scores
            keep = None
            if dropout > 0.0:
                keep = torch.empty_like(weights).bernoulli_(1.0 - dropout).bool()
                dropped = weights * keep * keep_scale
            else:
                dropped = weights
            vb = vh[:, :, :seen].reshape(h * b, seen, d_head)
            y[:, :, start:stop] = torch.bmm(dropped, vb).view(h, b, n, d_head)
            saved.append((weights, keep))
        ctx.save_for_backward(qh, kh, vh, e, y)
        ctx.saved_blocks, ctx.keep_scale, ctx.block, ctx.scale = saved, keep_scale, block, scale
        return y.transpose(0, 1)

    @staticmethod
    @_backward_as_forward
    def backward(ctx, dy):
        qh, kh, vh, e, y = ctx.saved_tensors
        h, b, t_q, d_head = qh.shape
        t_k = kh.shape[2]
        keep_scale = ctx.keep_scale
        dyh = dy.transpose(0, 1).contiguous()  # (H, B, T_q, Dh)
        # softmax backward needs Σ_j P_ij dP_ij per row; it equals dy_i · y_i (dropout too)
        row = (dyh * y).sum(-1, keepdim=True)  # (H, B, T_q, 1)
        dq = torch.empty_like(qh)
        dk = torch.zeros_like(kh)
        dv = torch.zeros_like(vh)
        de = torch.zeros_like(e)
        blocks = _blocks(t_q, t_k, ctx.block)
        for (weights, keep), (start, stop, seen) in zip(ctx.saved_blocks, blocks, strict=True):
            n = stop - start
            dyb = dyh[:, :, start:stop].reshape(h * b, n, d_head)
            qb = qh[:, :, start:stop].reshape(h, b * n, d_head)
            kb = kh[:, :, :seen].reshape(h * b, seen, d_head)
            vb = vh[:, :, :seen].reshape(h * b, seen, d_head)
            grad = torch.bmm(dyb, vb.transpose(1, 2))  # (H·B, n, seen): dL/d(dropped weights)
            if keep is None:
                dropped = weights
            else:
                dropped = weights * keep * keep_scale
                grad.mul_(keep).mul_(keep_scale)
            dv[:, :, :seen] += torch.bmm(dropped.transpose(1, 2), dyb).view(h, b, seen, d_head)
            # dS = P ⊙ (dP - row), written straight into the padded layout that skew's inverse
            # needs: its first n entries per matrix are the only ones no score maps to
            padded = weights.new_empty(h * b, n * (seen + 1))
            padded[:, :n] = 0
            grad_scores = padded[:, n:].view(h * b, n, seen)
            grad.sub_(row[:, :, start:stop].reshape(h * b, n, 1))
            torch.mul(grad, weights, out=grad_scores)
            del grad
            padded = padded.view(h, b * n, seen + 1)
            e_pad = _padded_rows(e, seen)
            dqb = torch.bmm(grad_scores, kb).view(h, b * n, d_head)
            dqb.baddbmm_(padded, e_pad)
            dq[:, :, start:stop] = dqb.view(h, b, n, d_head)
            dk[:, :, :seen] += torch.bmm(
                grad_scores.transpose(1, 2), qb.view(h * b, n, d_head)
            ).view(h, b, seen, d_head)
            de[:, t_k - seen :] += torch.bmm(padded.transpose(1, 2), qb)[:, 1:]
        dq.mul_(ctx.scale)
        return dq.transpose(0, 1), dk.transpose(0, 1), dv.transpose(0, 1), de, None, None


def causal_relative_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel: RelativeEmbedding,
    dropout: float = 0.0,
    block: int = BLOCK,
) -> torch.Tensor:
    """Relative causal attention of the last ``T_q`` positions over ``T_k`` keys.

    ``q`` (B, H, T_q, Dh); ``k``, ``v`` (B, H, T_k, Dh); ``dropout`` drops attention weights
    (pass 0.0 in eval). A block of queries ending at position ``p`` attends to keys ``0..p``
    only, so with ``n`` equal blocks of a square problem the scores cover ``(n + 1) / 2n`` of the
    full matrix (62.5% at four blocks) instead of all of it. Returns (B, H, T_q, Dh).
    """
    return CausalRelativeAttention.apply(q, k, v, rel(k.shape[2]), dropout, block)
