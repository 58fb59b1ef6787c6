"""Benchmark: compile seconds of the C kernel per flag set, and the speed each build buys.

Why: ``setup.py`` compiles ``src/midiforge/kernels/relative_attention.c`` when midiforge is
installed, so its compile time is part of ``bash scripts/setup.sh`` and of every wheel build.
For each flag set this compiles the file into a temporary folder (timed as the compiler's CPU
seconds, one process, as the install runs it), loads the build, and times (with one thread, as
CPU seconds too, so that other jobs on a shared machine count as little as they can)

* one layer's attention, forward + backward, at the training benchmark's size (batch 8 x 256
  tokens, 8 heads of 32; ``bench/train.py``), best of ``--rounds`` rounds of 5;
* one decoding step of the shipped model's attention (batch 1, 8 heads of 32, 100 cached
  positions, fp16 cache; ``bench/generate.py``), best of 2000.

    python bench/kernel_flags.py [--sets default,O2,...] [--threads 1] [--rounds 5]

Results: docs/benchmarks.md, "Building the C kernel".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from midiforge.kernels import native
from midiforge.kernels.relative_attention import distance_rows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from setup import BASE_FLAGS, KERNEL_SOURCE  # noqa: E402  (the flags the install uses)

COMMON = ["-fPIC", "-shared", *(f for f in BASE_FLAGS if not f.startswith("-O"))]
OPT = [f for f in BASE_FLAGS if f.startswith("-O")]  # the install's optimisation level
SETS = {  # name -> flags added to COMMON; "default" is what setup.py builds
    "default": [*OPT, "-fopenmp", "-march=native"],
    "O2": ["-O2", "-fopenmp", "-march=native"],
    "O1": ["-O1", "-fopenmp", "-march=native"],
    "O2 -funroll-loops": ["-O2", "-funroll-loops", "-fopenmp", "-march=native"],
    "no-specialise": [*OPT, "-DNO_SPECIALISED", "-fopenmp", "-march=native"],
    "x86-64-v3": [*OPT, "-fopenmp", "-march=x86-64-v3"],
    "no-march": [*OPT, "-fopenmp"],
    "no-openmp": [*OPT, "-march=native"],
}
B, T, H, DH = 8, 256, 8, 32  # bench/train.py's size
CACHED = 100  # decode: positions already in the cache


def compile_seconds(flags: list[str], out: Path) -> float:
    """CPU seconds of the compiler (user + system), robust to other jobs on the machine."""
    before = os.times()
    subprocess.run(["gcc", *flags, str(ROOT / KERNEL_SOURCE), "-o", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def best_seconds(fn, rounds: int, repeats: int) -> float:
    """Best mean over ``rounds`` rounds of ``repeats`` calls. With one thread the clock is the
    process's CPU time, so other jobs time-sharing the cores do not count (their cache traffic
    still does); with more, wall time."""
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for _ in range(repeats):
            fn()
        best = min(best, (clock() - start) / repeats)
    return best


def kernel_ms(rounds: int) -> tuple[float, float]:
    """Attention forward + backward ms and decode-step µs with the library now loaded."""
    torch.manual_seed(0)
    qkv = torch.randn(B, T, 3 * H * DH, requires_grad=True)
    table = torch.randn(H, T, DH)
    grad = torch.randn(B, T, H * DH)

    def train():
        native.NativeRelativeAttention.apply(qkv, distance_rows(table, T), H, 0.0).backward(grad)

    step_qkv = torch.randn(1, 1, 3 * H * DH)
    keys, values = torch.randn(2, 1, H, CACHED + 1, DH).half()
    half_table = torch.randn(H, 1024, DH).half()

    def step():
        native.decode_step(step_qkv, keys, values, CACHED, half_table)

    return best_seconds(train, rounds, 5) * 1e3, best_seconds(step, 1, 2000) * 1e6


def sdpa_ms(rounds: int) -> float:
    """The same attention without relative positions, torch's causal SDPA: the yardstick."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, T, DH, requires_grad=True) for _ in range(3))
    grad = torch.randn(B, H, T, DH)

    def train():
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    return best_seconds(train, rounds, 5) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated names of SETS")
    parser.add_argument("--threads", type=int, default=1, help="1: CPU-time clock")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"gcc, {args.threads} threads; attention {B}x{T} tokens, {H} heads of {DH}; "
          f"decode step at {CACHED} cached positions, fp16 cache")  # fmt: skip
    print(f"{'flags':28s} {'compile s':>9s} {'fwd+bwd ms':>10s} {'step us':>8s}")
    print(f"{'(plain causal SDPA)':28s} {'':9s} {sdpa_ms(args.rounds):10.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.sets.split(",")):
            flags = [*COMMON, *SETS[name]]
            out = Path(tmp) / f"build{i}.so"  # a new name each: dlopen caches by path
            seconds = compile_seconds(flags, out)
            lib = native.load(out)
            native.library = lambda lib=lib: lib  # the kernels call library(): swap this build in
            fwd_bwd, step = kernel_ms(args.rounds)
            print(f"{name:28s} {seconds:9.1f} {fwd_bwd:10.2f} {step:8.1f}")


if __name__ == "__main__":
    main()
