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
