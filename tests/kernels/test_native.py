"""The C relative-attention kernel against the tensor-op reference: the library is the one the
install built, the backend is chosen as documented, and forward, every gradient, dropout and
the cached decoding step (fp32 and fp16 caches) agree with the reference in fp64."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from midiforge import kernels
from midiforge.kernels import native
from midiforge.kernels.relative_attention import (
    attention,
    backend,
    distance_rows,
    skew,
    split_heads,
    tensor_ops_only,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("probe.py")


def test_the_library_built_at_install_time_is_loaded():
    assert native.library() is not None, (
        f"{kernels.status()}: build it with `pip install -e .` (or `python setup.py build_ext "
        "--inplace`); it is compiled when midiforge is installed, never at run time"
    )
    assert kernels.status() == f"c ({native.LIBRARY})"


def test_the_backend_is_the_c_kernel_for_fp32_cpu_tensors_only():
    table = torch.zeros(4, 8, 16)
    assert backend(torch.zeros(1, 2, 3 * 64), table) == "c"
    assert backend(torch.zeros(1, 2, 3 * 64, dtype=torch.double), table.double()) == "tensor-ops"
    assert backend(torch.zeros(1, 2, 3 * 64), None) == "tensor-ops"  # no relative table
    wide = torch.zeros(1, 8, native.MAX_HEAD + 16)  # heads wider than the kernel's largest
    assert backend(torch.zeros(1, 2, 3 * wide.shape[-1]), wide) == "tensor-ops"
    with tensor_ops_only():
        assert backend(torch.zeros(1, 2, 3 * 64), table) == "tensor-ops"


def c_and_reference(b, h, t, d_head, max_rel, dropout=0.0, seed=0):
    """The entry point on the C kernel (fp32) and on the reference (fp64), same problem."""
    torch.manual_seed(seed)
    qkv = torch.randn(b, t, 3 * h * d_head, requires_grad=True)
    table = torch.randn(h, max_rel, d_head, requires_grad=True)
    upstream = torch.randn(b, t, h * d_head)
    torch.manual_seed(seed + 1)  # the kernel draws its dropout seeds from torch's generator
    got, _ = attention(qkv, h, table, dropout=dropout)
    assert got.grad_fn.name() == "NativeRelativeAttentionBackward"
    got_grads = torch.autograd.grad(got, (qkv, table), upstream)
    qkv64, table64 = (x.detach().double().requires_grad_() for x in (qkv, table))
    if dropout == 0:
        want, _ = attention(qkv64, h, table64)
    else:  # the same weights dropped as the kernel's own mask
        torch.manual_seed(seed + 1)
        seeds = torch.randint(0, 2**32, (2,), dtype=torch.int64)
        keep = native.keep_mask((b, h, t, t), dropout, seeds)
        want = masked_textbook(qkv64, distance_rows(table64, t), h, keep / (1.0 - dropout))
    want_grads = torch.autograd.grad(want, (qkv64, table64), upstream.double())
    return (got, *got_grads), (want, *want_grads)


def masked_textbook(qkv, rows, n_heads, scale):
    """Textbook relative attention whose weights are multiplied by ``scale`` (B, H, T, T)."""
    b, t, three_d = qkv.shape
    q, k, v = split_heads(qkv, n_heads)
    q = q * q.shape[-1] ** -0.5
    scores = q @ k.transpose(-1, -2) + skew(q @ rows.transpose(1, 2))
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), -1) * scale
    return (weights @ v).transpose(1, 2).reshape(b, t, three_d // 3)


# (batch, heads, length, head size, max_rel): head sizes of one vector up to 128 floats, sizes
# with no copy of their own (24, 100: a partial vector), lengths off the vector grid, a single
# position, and lengths past max_rel
CASES = [(2, 3, 37, 32, 40), (1, 2, 5, 8, 5), (2, 2, 70, 64, 70), (1, 1, 1, 16, 4),
         (2, 2, 33, 100, 40), (2, 4, 50, 16, 20), (1, 2, 40, 128, 30),
         (2, 2, 21, 24, 21)]  # fmt: skip


@pytest.mark.parametrize("b,h,t,d_head,max_rel", CASES)
def test_c_kernel_matches_the_reference(b, h, t, d_head, max_rel):
    got, want = c_and_reference(b, h, t, d_head, max_rel)
    for name, a, w in zip(("output", "d qkv", "d table"), got, want, strict=True):
        torch.testing.assert_close(a.double(), w, atol=2e-5, rtol=1e-4, msg=name)


def test_dropout_masks_the_weights_it_says_and_gradients_follow():
    got, want = c_and_reference(2, 3, 45, 32, 45, dropout=0.3, seed=4)
    for name, a, w in zip(("output", "d qkv", "d table"), got, want, strict=True):
        torch.testing.assert_close(a.double(), w, atol=2e-5, rtol=1e-4, msg=name)
    mask = native.keep_mask((4, 8, 128, 128), 0.3, (11, 12))
    assert abs(mask.float().mean().item() - 0.7) < 0.01
    assert not torch.equal(mask, native.keep_mask((4, 8, 128, 128), 0.3, (11, 13)))


def with_threads(n: int, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def test_results_do_not_depend_on_the_thread_count():
    torch.manual_seed(5)
    qkv = torch.randn(3, 40, 3 * 64)
    table = torch.randn(4, 40, 16)

    def run():
        x = qkv.clone().requires_grad_()
        y, _ = attention(x, 4, table)
        y.square().sum().backward()
        return y, x.grad

    (y1, g1), (y2, g2) = with_threads(1, run), with_threads(2, run)
    assert torch.equal(y1, y2) and torch.equal(g1, g2)


# (batch, heads, cached, head size, max_rel): one vector, a partial one (100), an empty cache,
# keys past max_rel, a cache longer than a thread's minimum of work
DECODE_CASES = [(1, 8, 100, 32, 1024), (2, 3, 37, 100, 40), (3, 2, 0, 16, 8), (2, 4, 90, 8, 20),
                (2, 8, 700, 64, 256)]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("b,h,length,d_head,max_rel", DECODE_CASES)
def test_decoding_step_matches_the_reference(b, h, length, d_head, max_rel, dtype):
    torch.manual_seed(length)
    d = h * d_head
    qkv = torch.randn(b, 1, 3 * d)
    qkv[..., d:] = qkv[..., d:].to(dtype).float()  # the new key and value as the cache keeps them
    table = torch.randn(h, max_rel, d_head).to(dtype).float()
    # a trimmed cache: a view that starts inside a larger buffer, with free rows after it
    keys, values = torch.randn(2, b, h, length + 9, d_head).to(dtype)[:, :, :, 4:]
    past64 = (keys.double(), values.double())
    with torch.inference_mode():
        y, (k2, v2) = attention(qkv, h, table, (keys, values), length, dtype)
        want, _ = attention(qkv.double(), h, table.double(), past64, length)
    assert k2.data_ptr() == keys.data_ptr() and v2.data_ptr() == values.data_ptr()  # in place
    torch.testing.assert_close(y.double(), want, atol=2e-5, rtol=1e-4)
    k_new, v_new = (t[:, :, 0] for t in split_heads(qkv, h)[1:])
    assert torch.equal(keys[:, :, length], k_new.to(dtype))
    assert torch.equal(values[:, :, length], v_new.to(dtype))


def test_decoding_step_does_not_depend_on_the_thread_count():
    torch.manual_seed(7)
    qkv = torch.randn(4, 1, 3 * 256)
    keys, values = torch.randn(2, 4, 8, 600, 32).half()
    table = torch.randn(8, 1024, 32).half()
    outs = [with_threads(n, lambda: native.decode_step(qkv, keys, values, 590, table))
            for n in (1, 2)]  # fmt: skip
    assert torch.equal(outs[0], outs[1])


def test_an_fp16_cache_saturates_instead_of_overflowing():
    qkv = torch.zeros(1, 1, 3 * 16)
    qkv[0, 0, 16:] = 1e6  # key and value far past fp16's largest finite value
    keys, values = torch.zeros(2, 1, 1, 4, 16, dtype=torch.float16)
    table = torch.randn(1, 8, 16).half()
    y = native.decode_step(qkv, keys, values, 0, table)
    assert keys[0, 0, 0].eq(65504).all() and torch.isfinite(y).all()


def cpu_has(flag: str) -> bool:
    return flag in Path("/proc/cpuinfo").read_text().split()


def test_a_library_built_for_instructions_this_cpu_lacks_is_refused_not_run(tmp_path):
    # a -march=native wheel copied to an older CPU would die of SIGILL; it is refused instead.
    # Built for AVX-512 it loads exactly where the CPU has AVX-512; the baseline always loads.
    source = ROOT / "src" / "midiforge" / "kernels" / "relative_attention.c"
    builds = [("baseline", ["-march=x86-64"], True),
              ("avx512", ["-march=skylake-avx512"], cpu_has("avx512f"))]  # fmt: skip
    for name, flags, loads in builds:
        out = tmp_path / f"{name}.so"
        subprocess.run(["gcc", "-O1", "-fPIC", "-shared", *flags, str(source), "-o", str(out)],
                       check=True, capture_output=True)  # fmt: skip
        if loads:
            assert native.load(out).mf_relattn_has_half() >= 0
        else:
            with pytest.raises(OSError, match="instructions this one lacks"):
                native.load(out)


def test_midiforge_native_0_runs_the_tensor_ops_and_says_so_once():
    env = {**os.environ, "MIDIFORGE_NATIVE": "0", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(PROBE)], env=env, capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    report = json.loads(done.stdout)
    assert report == {"status": "tensor-ops (MIDIFORGE_NATIVE=0 is set)", "c_forward": False,
                      "cache_dtype": "torch.float32"}  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if "uses tensor ops" in line]
    assert lines == ["INFO midiforge.kernels.native: relative attention uses tensor ops: "
                     "MIDIFORGE_NATIVE=0 is set"]  # fmt: skip
