"""Relative attention: the skew against a direct gather, and the hand-written causal kernel
(forward and every gradient) against the plain autograd formulation of the same maths."""

from __future__ import annotations

import pytest
import torch

from midiforge.models.relative_attention import (
    CausalRelativeAttention,
    RelativeEmbedding,
    causal_relative_attention,
    skew,
)


@pytest.mark.parametrize("t_q,t_k", [(7, 7), (3, 9), (1, 5)])
def test_skew_matches_direct_gather(t_q, t_k):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, t_q, 4, generator=g)
    table = torch.randn(3, t_k, 4, generator=g)  # rows for distances t_k-1 .. 0
    got = skew(q @ table.transpose(1, 2))  # (B, H, T_q, T_k)
    for i in range(t_q):
        pos = t_k - t_q + i
        for j in range(pos + 1):
            want = q[:, :, i] @ table[:, t_k - 1 - (pos - j)].T  # (B, H, H)
            want = torch.diagonal(want, dim1=1, dim2=2)  # (B, H)
            torch.testing.assert_close(got[:, :, i, j], want)


def plain(q, k, v, rel):
    """The textbook formulation, left to autograd: scores, skew, causal mask, softmax."""
    t_q, t_k = q.shape[2], k.shape[2]
    q = q * q.shape[-1] ** -0.5
    scores = q @ k.transpose(-1, -2) + skew(q @ rel(t_k).transpose(1, 2))
    future = torch.ones(t_q, t_k, dtype=torch.bool).triu(t_k - t_q + 1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), -1) @ v


# (queries, keys, block, max_rel): one block, several uneven blocks, cached queries (T_q < T_k),
# a single query, and keys beyond max_rel (distances clipped to the table's last row)
CASES = [(7, 7, 64, 8), (9, 9, 4, 20), (5, 9, 2, 12), (1, 6, 4, 6), (11, 11, 3, 5)]


@pytest.mark.parametrize("t_q,t_k,block,max_rel", CASES)
def test_kernel_matches_autograd_formulation(t_q, t_k, block, max_rel):
    torch.manual_seed(0)
    rel = RelativeEmbedding(3, 4, max_rel).double()
    q, k, v = (
        torch.randn(2, 3, n, 4, dtype=torch.double, requires_grad=True) for n in (t_q, t_k, t_k)
    )
    got = causal_relative_attention(q, k, v, rel, block=block)
    want = plain(q, k, v, rel)
    torch.testing.assert_close(got, want)
    upstream = torch.randn_like(got)
    inputs = (q, k, v, rel.table)
    for a, b in zip(
        torch.autograd.grad(got, inputs, upstream),
        torch.autograd.grad(want, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_kernel_gradients_with_dropout_match_finite_differences():
    g = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(1, 2, 6, 3, dtype=torch.double, generator=g).requires_grad_() for _ in range(3)
    )
    e = torch.randn(2, 6, 3, dtype=torch.double, generator=g).requires_grad_()

    def seeded(q, k, v, e):  # the same dropout mask on every evaluation
        torch.manual_seed(3)
        return CausalRelativeAttention.apply(q, k, v, e, 0.4, 4)

    assert torch.autograd.gradcheck(seeded, (q, k, v, e))
    torch.manual_seed(3)
    dropped = seeded(q, k, v, e)
    assert not torch.allclose(dropped, CausalRelativeAttention.apply(q, k, v, e, 0.0, 4))
