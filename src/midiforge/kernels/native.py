"""The compiled relative-attention library: loaded with ctypes, wrapped for autograd.

``relative_attention.c`` (see its header for what it computes) is compiled into the plain
shared library ``_relative_attention.so`` next to this file when midiforge is installed
(``setup.py``: ``pip install -e .`` builds it in the source tree, a wheel carries it). This
module only *loads* that file; it never compiles and writes nothing. When the library is
missing (no C compiler at install time), does not load, was built for another CPU, or
``MIDIFORGE_NATIVE=0`` is set, :func:`library` returns None, logs the reason once, and
:mod:`midiforge.kernels.relative_attention` uses its tensor-op reference instead.

Two kernels: causal self-attention over a whole sequence, forward and backward
(:class:`NativeRelativeAttention`), and one decoding step against a key/value cache in fp32 or
fp16 (:func:`decode_step`).
"""

from __future__ import annotations

import ctypes
import logging
import os
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_relative_attention.so")  # what setup.py builds
MAX_HEAD = 128  # the kernel's largest head size (8 vectors of 16 floats)


class _View(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p)] + [(n, ctypes.c_int64) for n in ("sb", "sh", "st")]


class _Job(ctypes.Structure):
    """Mirror of ``Job`` in the C file; the library's ``mf_relattn_abi`` checks the size."""

    _fields_ = (
        [(n, ctypes.c_int64) for n in ("B", "H", "Tq", "Tk", "D", "nthreads")]
        + [(n, _View) for n in ("q", "k", "v", "y", "dy", "dq", "dk", "dv")]
        + [("e", ctypes.c_void_p), ("e_sh", ctypes.c_int64)]
        + [("stats", ctypes.c_void_p), ("de", ctypes.c_void_p)]
        + [("scale", ctypes.c_float), ("drop", ctypes.c_float)]
        + [("s0", ctypes.c_uint32), ("s1", ctypes.c_uint32)]
    )


def load(path: Path) -> ctypes.CDLL:
    """Open a build of the kernel and declare its functions; OSError when it cannot run here."""
    lib = ctypes.CDLL(str(path))
    lib.mf_relattn_cpu_ok.restype = ctypes.c_int
    if not lib.mf_relattn_cpu_ok():  # checked with baseline instructions only, so it is safe
        raise OSError("it was built for a CPU with instructions this one lacks (-march)")
    lib.mf_relattn_abi.restype = ctypes.c_int
    if lib.mf_relattn_abi() != ctypes.sizeof(_Job):
        raise OSError("its Job structure does not match this loader's")
    for name in ("mf_relattn_forward", "mf_relattn_backward"):
        getattr(lib, name).argtypes = [ctypes.POINTER(_Job)]
        getattr(lib, name).restype = ctypes.c_int
    lib.mf_relattn_keep_mask.argtypes = [ctypes.c_int64] * 4 + [
        ctypes.c_float, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p,
    ]  # fmt: skip
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.mf_relattn_decode.argtypes = [i64] * 6 + [ptr, i64, ptr, ptr] + [i64] * 3 + [
        ptr, ptr, i64, ctypes.c_float, ctypes.c_int,
    ]  # fmt: skip
    lib.mf_relattn_decode.restype = ctypes.c_int
    lib.mf_relattn_has_half.restype = ctypes.c_int
    return lib


_reason: str | None = None  # why library() is None, once it has been asked


@cache
def library() -> ctypes.CDLL | None:
    """The installed kernel library, or None; the first call logs why it is None."""
    global _reason
    if os.environ.get("MIDIFORGE_NATIVE", "1") == "0":
        _reason = "MIDIFORGE_NATIVE=0 is set"
        log.info("relative attention uses tensor ops: %s", _reason)
        return None
    if not LIBRARY.exists():
        _reason = (
            f"{LIBRARY} was not built when midiforge was installed (was there no C compiler?); "
            "reinstall with gcc or clang on PATH for the C kernel"
        )
    else:
        try:
            return load(LIBRARY)
        except (OSError, AttributeError) as err:
            _reason = f"{LIBRARY} does not load: {err}"
    log.warning("relative attention uses tensor ops: %s", _reason)
    return None


def unavailable_reason() -> str | None:
    """Why the library is not used (None when it is loaded)."""
    return None if library() is not None else _reason


@cache
def half_support() -> int:
    """fp16 caches in the decoding kernel: 0 no (no library, or no ``_Float16`` in the
    compiler), 1 yes but converted lane by lane (slow), 2 yes with hardware conversion (F16C,
    AVX-512 or ARM), the only case where fp16 is worth choosing for speed."""
    lib = library()
    return 0 if lib is None else int(lib.mf_relattn_has_half())


def _view(t: torch.Tensor | None) -> _View:
    """(B, H, T, D) tensor with unit D stride -> the C view (pointer and strides in floats)."""
    if t is None:
        return _View(None, 0, 0, 0)
    assert t.dtype == torch.float32 and t.stride(3) == 1, "kernel views need unit stride on D"
    return _View(t.data_ptr(), t.stride(0), t.stride(1), t.stride(2))


def split_heads(qkv: torch.Tensor, n_heads: int) -> tuple[torch.Tensor, ...]:
    """Split ``(B, T, 3·D)`` into q, k, v views ``(B, H, T, Dh)``: no copy, and few ops, as a
    decoding step pays for each."""
    b, t, three_d = qkv.shape
    return qkv.view(b, t, 3, n_heads, three_d // (3 * n_heads)).permute(2, 0, 3, 1, 4).unbind(0)


def _job(qkv, e, n_heads, dropout, seeds, y, stats, dy=None, dqkv=None, de=None) -> _Job:
    q, k, v = split_heads(qkv, n_heads)
    b, h, t, dh = q.shape
    dq, dk, dv = split_heads(dqkv, n_heads) if dqkv is not None else (None, None, None)
    yv = y.view(b, t, h, dh).transpose(1, 2)
    dyv = dy.view(b, t, h, dh).transpose(1, 2) if dy is not None else None
    assert e.stride(2) == 1 and e.stride(1) == dh, "relative table rows must be contiguous"
    return _Job(
        b, h, t, t, dh, max(1, torch.get_num_threads()),
        _view(q), _view(k), _view(v), _view(yv), _view(dyv), _view(dq), _view(dk), _view(dv),
        e.data_ptr(), e.stride(0),
        stats.data_ptr() if stats is not None else None, de.data_ptr() if de is not None else None,
        dh**-0.5, dropout, int(seeds[0]), int(seeds[1]),
    )  # fmt: skip


def _check(code: int, what: str) -> None:
    if code != 0:
        raise MemoryError(f"relative attention kernel: {what} could not allocate its scratch")


class NativeRelativeAttention(torch.autograd.Function):
    """Causal relative self-attention over a fused ``qkv`` projection, forward and backward in C.

    Inputs: ``qkv`` (B, T, 3·D) as ``nn.Linear`` returns it; ``e`` (H, T, Dh) the relative rows
    for distances ``T-1 .. 0``; ``n_heads``; ``dropout`` on the attention weights. Returns
    ``(B, T, D)``, heads already merged. Taking the fused projection lets forward read q, k, v
    in place and backward write their gradients into one ``(B, T, 3·D)`` tensor: no transposes
    and no concatenation around the kernel.
    """

    @staticmethod
    def forward(ctx, qkv, e, n_heads, dropout):
        qkv = qkv.contiguous()
        b, t, three_d = qkv.shape
        y = qkv.new_empty(b, t, three_d // 3)
        # per query row, the score max and the softmax's 1/sum: backward recomputes the
        # weights from them instead of keeping a (B, H, T, T) tensor
        stats = qkv.new_empty(b, n_heads, t, 2) if any(ctx.needs_input_grad) else None
        seeds = torch.randint(0, 2**32, (2,), dtype=torch.int64) if dropout > 0 else (0, 0)
        job = _job(qkv, e, n_heads, dropout, seeds, y, stats)
        _check(library().mf_relattn_forward(job), "forward")
        if stats is not None:
            ctx.save_for_backward(qkv, e, y, stats)
        ctx.n_heads, ctx.dropout, ctx.seeds = n_heads, dropout, seeds
        return y

    @staticmethod
    def backward(ctx, dy):
        qkv, e, y, stats = ctx.saved_tensors
        n_heads = ctx.n_heads
        b, t, _ = qkv.shape
        dqkv = torch.empty_like(qkv)
        de = qkv.new_empty(b, n_heads, t, e.shape[2])
        job = _job(qkv, e, n_heads, ctx.dropout, ctx.seeds, y, stats, dy.contiguous(), dqkv, de)
        _check(library().mf_relattn_backward(job), "backward")
        return dqkv, de.sum(0), None, None


def decode_step(
    qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, length: int, table: torch.Tensor
) -> torch.Tensor:
    """One decoding step of relative attention, every head in one C call.

    Writes the new token's key and value (from ``qkv``) into row ``length`` of the cache
    buffers, then attends its query to rows ``0..length``. ``qkv`` (B, 1, 3·D) is the fused
    projection of the new token; ``keys``, ``values`` (B, H, capacity > length, Dh) the cache
    buffers with equal strides and unit stride on Dh, fp32 or fp16; ``table`` the whole
    (H, max_rel, Dh) relative table in the cache's dtype. Returns (B, 1, D), heads merged. No
    dropout and no gradient: this is the inference path.
    """
    b, _, three_d = qkv.shape
    h, max_rel, dh = table.shape
    assert qkv.is_contiguous() and table.is_contiguous() and keys.stride() == values.stride()
    assert keys.stride(3) == 1 and keys.dtype == values.dtype == table.dtype
    assert keys.shape[2] > length, "the cache buffers need a free row for the new token"
    y = qkv.new_empty(b, 1, three_d // 3)
    code = library().mf_relattn_decode(
        b, h, dh, length, max_rel, torch.get_num_threads(), qkv.data_ptr(), three_d,
        keys.data_ptr(), values.data_ptr(), keys.stride(0), keys.stride(1), keys.stride(2),
        table.data_ptr(), y.data_ptr(), three_d // 3, dh**-0.5, int(keys.dtype == torch.float16),
    )  # fmt: skip
    _check(code, "a decoding step")
    return y


def keep_mask(shape: tuple[int, int, int, int], dropout: float, seeds) -> torch.Tensor:
    """The dropout keep mask the kernel draws for ``seeds``, as a bool (B, H, T_q, T_k) tensor."""
    out = torch.empty(shape, dtype=torch.uint8)
    library().mf_relattn_keep_mask(*shape, dropout, int(seeds[0]), int(seeds[1]), out.data_ptr())
    return out.bool()
