"""The tensor-op reference of relative attention: the skew against a direct gather, and the
reference (forward and every gradient) against the textbook formulation, in fp64, for whole
sequences, cached queries, distances past the table and attention without positions."""

from __future__ import annotations

import pytest
import torch

from midiforge.kernels.relative_attention import (
    attention,
    distance_rows,
    reference,
    skew,
    split_heads,
    tensor_ops_only,
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


def test_distance_rows_are_the_last_rows_and_clip_past_the_table():
    table = torch.arange(2 * 5 * 3.0).view(2, 5, 3)  # row r = distance 4 - r
    assert torch.equal(distance_rows(table, 3), table[:, 2:])  # distances 2, 1, 0
    long = distance_rows(table, 8)  # distances 7 .. 0: 7, 6, 5 share row 0 (distance >= 4)
    assert torch.equal(long[:, :4], table[:, :1].expand(-1, 4, -1))
    assert torch.equal(long[:, 3:], table)


def textbook(q, k, v, rows):
    """Scores, skew, causal mask, softmax, left to autograd (``rows`` None: no positions)."""
    t_q, t_k = q.shape[2], k.shape[2]
    q = q * q.shape[-1] ** -0.5
    scores = q @ k.transpose(-1, -2)
    if rows is not None:
        scores = scores + skew(q @ rows.transpose(1, 2))
    future = torch.ones(t_q, t_k, dtype=torch.bool).triu(t_k - t_q + 1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), -1) @ v


# (queries, keys, max_rel, relative): a whole sequence, cached queries (T_q < T_k), a single
# query, keys beyond max_rel (distances clipped to the table's first row), and no positions
CASES = [(7, 7, 8, True), (5, 9, 12, True), (1, 6, 6, True), (11, 11, 5, True),
         (9, 9, 9, False), (4, 10, 10, False), (1, 7, 7, False)]  # fmt: skip


@pytest.mark.parametrize("t_q,t_k,max_rel,relative", CASES)
def test_reference_matches_the_textbook_formulation(t_q, t_k, max_rel, relative):
    torch.manual_seed(0)
    q, k, v = (
        torch.randn(2, 3, n, 4, dtype=torch.double, requires_grad=True) for n in (t_q, t_k, t_k)
    )
    table = torch.randn(3, max_rel, 4, dtype=torch.double, requires_grad=True)
    rows = distance_rows(table, t_k) if relative else None
    got, want = reference(q, k, v, rows), textbook(q, k, v, rows)
    torch.testing.assert_close(got, want)
    inputs = (q, k, v, table) if relative else (q, k, v)
    upstream = torch.randn_like(got)
    for a, b in zip(
        torch.autograd.grad(got, inputs, upstream),
        torch.autograd.grad(want, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_the_entry_point_runs_the_reference_off_the_c_kernel_and_appends_the_cache():
    # fp64 never takes the C kernel: attention() is then the reference on heads split from qkv
    torch.manual_seed(1)
    b, h, dh, cached = 2, 3, 4, 5
    qkv = torch.randn(b, 2, 3 * h * dh, dtype=torch.double)
    table = torch.randn(h, 16, dh, dtype=torch.double)
    keys, values = torch.randn(2, b, h, cached + 4, dh, dtype=torch.double)  # 4 free rows
    y, (k2, v2) = attention(qkv, h, table, (keys, values), cached)
    q, k, v = split_heads(qkv, h)
    assert k2.data_ptr() == keys.data_ptr()  # written in place: the buffer had room
    torch.testing.assert_close(k2[:, :, cached : cached + 2], k)
    torch.testing.assert_close(v2[:, :, cached : cached + 2], v)
    want = textbook(q, k2[:, :, : cached + 2], v2[:, :, : cached + 2], distance_rows(table, 7))
    torch.testing.assert_close(y, want.transpose(1, 2).reshape(b, 2, h * dh))


def test_dropout_drops_attention_weights_in_the_reference():
    torch.manual_seed(2)
    qkv = torch.randn(2, 12, 3 * 16)
    table = torch.randn(2, 12, 8)
    with tensor_ops_only():
        plain, _ = attention(qkv, 2, table)
        dropped, _ = attention(qkv, 2, table, dropout=0.5)
    assert torch.isfinite(dropped).all() and not torch.allclose(plain, dropped)
