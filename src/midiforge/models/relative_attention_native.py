"""The C relative-attention kernels: compiled on first use, loaded by ctypes, wrapped for autograd.

Two entry points: causal self-attention over a whole sequence, forward and backward (training,
and the first pass over a primer: :func:`native_relative_attention`), and one decoding step
against a key/value cache in fp32 or fp16 (:func:`decode_step`).

Why compile at run time: the kernel (``relative_attention.c``, see its header for what it does)
is plain C with no Python or torch headers, so the machine's C compiler builds it in about a
second, tuned to the CPU it runs on (``-march=native``), and a wheel needs no build step. The
library is cached under ``$MIDIFORGE_CACHE`` (default ``~/.cache/midiforge``) by a hash of the
source, compiler and flags. Nothing is downloaded.

When there is no compiler, the build fails, ``MIDIFORGE_NATIVE=0`` is set, or the tensors are
not fp32 on the CPU, :func:`usable` says no and the transformer uses the tensor-op kernel in
:mod:`midiforge.models.relative_attention`: same results, slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("relative_attention.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-pthread", "-fno-math-errno", "-ffp-contract=fast"]
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


def cache_dir() -> Path:
    root = os.environ.get("MIDIFORGE_CACHE") or Path.home() / ".cache" / "midiforge"
    return Path(root) / "kernels"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(cc: str) -> Path:
    """Compile the kernel into the cache (atomically, so parallel ranks may race) and return it."""
    source = SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    last_error = ""
    # OpenMP when the compiler has it (its libgomp resolves to the copy torch loaded, so the
    # kernel runs in torch's thread pool); -march=native where the compiler knows it
    for extra in (["-fopenmp", "-march=native"], ["-march=native"], ["-fopenmp"], []):
        flags = FLAGS + extra
        key = hashlib.sha256(
            source + "\0".join([version, platform.machine(), *flags]).encode()
        ).hexdigest()[:16]
        target = cache_dir() / f"relative_attention-{key}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        done = subprocess.run(
            [cc, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300
        )
        if done.returncode == 0:
            os.replace(tmp, target)
            return target
        os.unlink(tmp)
        last_error = done.stderr.strip()[-2000:]
    raise OSError(f"{cc} could not build {SOURCE.name}: {last_error}")


@cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (and one logged reason) when it cannot be had here."""
    if os.environ.get("MIDIFORGE_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        log.info("no C compiler found: relative attention uses the tensor-op kernel")
        return None
    try:
        lib = ctypes.CDLL(str(_build(cc)))
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("relative attention falls back to the tensor-op kernel: %s", err)
        return None
    lib.mf_relattn_abi.restype = ctypes.c_int
    if lib.mf_relattn_abi() != ctypes.sizeof(_Job):
        log.warning("relative attention kernel: structure size mismatch; not used")
        return None
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


_off = 0  # depth of open disabled() blocks


@contextmanager
def disabled() -> Iterator[None]:
    """Run the block with the tensor-op kernel: for comparisons in tests and benchmarks."""
    global _off
    _off += 1
    try:
        yield
    finally:
        _off -= 1


def usable(x: torch.Tensor, d_head: int) -> bool:
    """Whether the C kernel can run on ``x``'s device and dtype with this head size."""
    return (
        not _off
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and d_head <= MAX_HEAD
        and library() is not None
    )


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
        lib = library()
        qkv = qkv.contiguous()
        b, t, three_d = qkv.shape
        y = qkv.new_empty(b, t, three_d // 3)
        # per query row, the score max and the softmax's 1/sum: backward recomputes the
        # weights from them instead of keeping a (B, H, T, T) tensor
        stats = qkv.new_empty(b, n_heads, t, 2) if any(ctx.needs_input_grad) else None
        seeds = torch.randint(0, 2**32, (2,), dtype=torch.int64) if dropout > 0 else (0, 0)
        job = _job(qkv, e, n_heads, dropout, seeds, y, stats)
        _check(lib.mf_relattn_forward(job), "forward")
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


def native_relative_attention(
    qkv: torch.Tensor, e: torch.Tensor, n_heads: int, dropout: float = 0.0
) -> torch.Tensor:
    """Causal relative self-attention of ``qkv`` (B, T, 3·D) with table rows ``e`` (H, T, Dh)."""
    return NativeRelativeAttention.apply(qkv, e, n_heads, dropout)


@cache
def half_support() -> int:
    """fp16 caches in the decoding kernel: 0 no (no kernel, or no ``_Float16`` in the compiler),
    1 yes but converted lane by lane (slow), 2 yes with hardware conversion (F16C, AVX-512 or
    ARM), the only case where fp16 is worth choosing for speed."""
    lib = library()
    return 0 if lib is None else int(lib.mf_relattn_has_half())


def decode_step(
    qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, length: int, table: torch.Tensor
) -> torch.Tensor:
    """One decoding step of relative attention, every head in one C call.

    Writes the new token's key and value (from ``qkv``) into row ``length`` of the cache
    buffers, then attends its query to rows ``0..length``. ``qkv`` (B, 1, 3·D) is the fused
    projection of the new token; ``keys``, ``values`` (B, H, capacity > length, Dh) the cache
    buffers with equal strides and unit stride on Dh, fp32 or fp16; ``table`` the whole
    (H, max_rel, Dh) relative table in the cache's dtype. Returns (B, 1, D), heads merged. No
    dropout: this is the eval path.
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
