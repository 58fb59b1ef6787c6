"""The C relative-attention kernel against the plain autograd formulation: forward, every
gradient, dropout, any head size and length, and the transformer with either kernel."""

from __future__ import annotations

import shutil

import pytest
import torch

from midiforge.models import relative_attention_native as native
from midiforge.models.registry import build
from midiforge.models.relative_attention import RelativeEmbedding, skew


def reference(qkv, table, n_heads, keep=None, dropout=0.0):
    """Textbook relative attention in fp64 from the kernel's inputs; ``keep`` masks weights."""
    b, t, three_d = qkv.shape
    q, k, v = native.split_heads(qkv, n_heads)
    q = q * q.shape[-1] ** -0.5
    scores = q @ k.transpose(-1, -2) + skew(q @ table.transpose(1, 2))
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), -1)
    if keep is not None:
        weights = weights * keep / (1.0 - dropout)
    return (weights @ v).transpose(1, 2).reshape(b, t, three_d // 3)


def run_both(b, h, t, d_head, max_rel, dropout=0.0, seed=0):
    """Kernel (fp32) and reference (fp64) outputs and gradients on the same random problem."""
    torch.manual_seed(seed)
    qkv = torch.randn(b, t, 3 * h * d_head, requires_grad=True)
    rel = RelativeEmbedding(h, d_head, max_rel)
    upstream = torch.randn(b, t, h * d_head)
    torch.manual_seed(seed + 1)  # the kernel draws its dropout seeds from torch's generator
    got = native.native_relative_attention(qkv, rel(t), h, dropout)
    got_grads = torch.autograd.grad(got, (qkv, rel.table), upstream)
    keep = None
    if dropout > 0:
        torch.manual_seed(seed + 1)
        seeds = torch.randint(0, 2**32, (2,), dtype=torch.int64)
        keep = native.keep_mask((b, h, t, t), dropout, seeds)
    qkv64 = qkv.detach().double().requires_grad_()
    rel64 = RelativeEmbedding(h, d_head, max_rel).double()
    rel64.table.data.copy_(rel.table.data)
    want = reference(qkv64, rel64(t), h, keep, dropout)
    want_grads = torch.autograd.grad(want, (qkv64, rel64.table), upstream.double())
    return (got, *got_grads), (want, *want_grads)


def test_the_kernel_builds_where_there_is_a_compiler():
    assert shutil.which("cc") or shutil.which("gcc"), "this machine should have a C compiler"
    assert native.library() is not None, "the C kernel failed to build: see the logged reason"
    assert native.usable(torch.zeros(1), 64)
    assert not native.usable(torch.zeros(1, dtype=torch.float64), 64)
    assert not native.usable(torch.zeros(1), native.MAX_HEAD + 1)


# (batch, heads, length, head size, max_rel): head sizes of 1, 2, 4 and 7 vectors (100 leaves a
# partial one), lengths off the 16-float grid, a single position, and lengths past max_rel
CASES = [(2, 3, 37, 32, 40), (1, 2, 5, 8, 5), (2, 2, 70, 64, 70), (1, 1, 1, 16, 4),
         (2, 2, 33, 100, 40), (2, 4, 50, 16, 20)]  # fmt: skip


@pytest.mark.parametrize("b,h,t,d_head,max_rel", CASES)
def test_kernel_matches_the_autograd_formulation(b, h, t, d_head, max_rel):
    got, want = run_both(b, h, t, d_head, max_rel)
    for name, a, w in zip(("output", "d qkv", "d table"), got, want, strict=True):
        torch.testing.assert_close(a.double(), w, atol=2e-5, rtol=1e-4, msg=name)


def test_dropout_masks_the_weights_it_says_and_gradients_follow():
    got, want = run_both(2, 3, 45, 32, 45, dropout=0.3, seed=4)
    for name, a, w in zip(("output", "d qkv", "d table"), got, want, strict=True):
        torch.testing.assert_close(a.double(), w, atol=2e-5, rtol=1e-4, msg=name)
    mask = native.keep_mask((4, 8, 128, 128), 0.3, (11, 12))
    assert abs(mask.float().mean().item() - 0.7) < 0.01
    assert not torch.equal(mask, native.keep_mask((4, 8, 128, 128), 0.3, (11, 13)))


def test_results_do_not_depend_on_the_thread_count():
    torch.manual_seed(5)
    qkv = torch.randn(3, 40, 3 * 64)
    rel = RelativeEmbedding(4, 16, 40)
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            x = qkv.clone().requires_grad_()
            y = native.native_relative_attention(x, rel(40), 4)
            y.square().sum().backward()
            outs.append((y, x.grad))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def graph_nodes(tensor):
    """Names of every backward node behind ``tensor``."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(n for n, _ in node.next_functions)
    return {type(n).__name__ for n in seen}


def test_transformer_trains_the_same_with_either_kernel():
    size = {"vocab_size": 50, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128,
            "max_seq_len": 40, "max_rel": 40, "dropout": 0.0}  # fmt: skip
    torch.manual_seed(6)
    model = build("transformer", size)
    batch = {"tokens": torch.randint(0, 50, (2, 41)), "mask": torch.ones(2, 40, dtype=torch.bool)}
    fast = model.loss(batch)["loss"]
    assert "NativeRelativeAttentionBackward" in graph_nodes(fast)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    with native.disabled():
        slow = model.loss(batch)["loss"]
        assert "NativeRelativeAttentionBackward" not in graph_nodes(slow)
        slow_grads = torch.autograd.grad(slow, list(model.parameters()))
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def decode_reference(qkv, keys, values, length, table):
    """fp64 textbook step: the new token's query against cached rows 0..length-1 and itself
    (its key and value as the cache stores them, in the cache's dtype)."""
    b = qkv.shape[0]
    h, max_rel, dh = table.shape
    q, k_new, v_new = (t[:, :, 0] for t in native.split_heads(qkv, h))  # (B, H, Dh)
    q, k_new, v_new = q.double(), k_new.to(keys.dtype).double(), v_new.to(keys.dtype).double()
    k = torch.cat([keys[:, :, :length].double(), k_new[:, :, None]], 2)
    v = torch.cat([values[:, :, :length].double(), v_new[:, :, None]], 2)
    t_k = length + 1
    rows = (torch.arange(t_k) + max_rel - t_k).clamp(min=0)  # key j reads distance t_k-1-j
    e = table.double()[:, rows]  # (H, T_k, Dh)
    scores = torch.einsum("bhd,bhjd->bhj", q, k + e) * dh**-0.5
    return torch.einsum("bhj,bhjd->bhd", torch.softmax(scores, -1), v).reshape(b, 1, h * dh)


# (batch, heads, cached, head size, max_rel): one vector, a partial one (100), an empty cache,
# keys past max_rel, a cache longer than a thread's minimum of work
DECODE_CASES = [(1, 8, 100, 32, 1024), (2, 3, 37, 100, 40), (3, 2, 0, 16, 8), (2, 4, 90, 8, 20),
                (2, 8, 700, 64, 256)]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("b,h,length,d_head,max_rel", DECODE_CASES)
def test_decoding_step_matches_the_formulation(b, h, length, d_head, max_rel, dtype):
    torch.manual_seed(length)
    qkv = torch.randn(b, 1, 3 * h * d_head)
    # a trimmed cache: a view that starts inside a larger buffer, with free rows after it
    keys = torch.randn(b, h, length + 9, d_head).to(dtype)[:, :, 4:]
    values = torch.randn(b, h, length + 9, d_head).to(dtype)[:, :, 4:]
    table = RelativeEmbedding(h, d_head, max_rel).table_as(dtype)
    want = decode_reference(qkv, keys, values, length, table)
    y = native.decode_step(qkv, keys, values, length, table)
    torch.testing.assert_close(y.double(), want, atol=2e-5, rtol=1e-4)
    # the new token's key and value were written, rounded to the cache's dtype
    k_new, v_new = (t[:, :, 0] for t in native.split_heads(qkv, h)[1:])
    assert torch.equal(keys[:, :, length], k_new.to(dtype))
    assert torch.equal(values[:, :, length], v_new.to(dtype))


def test_decoding_step_does_not_depend_on_the_thread_count():
    torch.manual_seed(7)
    qkv = torch.randn(4, 1, 3 * 256)
    keys, values = torch.randn(2, 4, 8, 600, 32).half()
    table = RelativeEmbedding(8, 32, 1024).table_as(torch.float16)
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(native.decode_step(qkv, keys, values, 590, table))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


def test_an_fp16_cache_saturates_instead_of_overflowing():
    qkv = torch.zeros(1, 1, 3 * 16)
    qkv[0, 0, 16:] = 1e6  # key and value far past fp16's largest finite value
    keys, values = torch.zeros(2, 1, 1, 4, 16, dtype=torch.float16)
    table = RelativeEmbedding(1, 16, 8).table_as(torch.float16)
    y = native.decode_step(qkv, keys, values, 0, table)
    assert keys[0, 0, 0].eq(65504).all() and torch.isfinite(y).all()
