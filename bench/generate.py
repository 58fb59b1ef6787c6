"""Benchmark: KV-cached decoding vs recomputing the whole context, and per-token cost vs position.

Targets (docs/benchmarks.md): 1024 tokens at batch 1 with the cache >= 10x faster than full
recompute each step; time per token at position 1000 <= 1.3x that at position 100.
Model: transformer d_model=256, 4 layers, 8 heads, d_ff=1024, relative attention, max_rel=1024,
max_seq_len=2048, vocab 300 (a REMI-sized vocabulary), untrained weights (speed does not depend
on them). One torch thread: batch-1 decoding gains nothing from a second.

    python bench/generate.py [--tokens 1024] [--pos absolute] [--exact]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from midiforge.models.registry import build

VOCAB = 300  # about a REMI vocabulary
MODEL = {"vocab_size": VOCAB, "d_model": 256, "n_layers": 4, "n_heads": 8, "d_ff": 1024,
         "max_seq_len": 2048, "max_rel": 1024, "dropout": 0.0}  # fmt: skip
RECOMPUTE_PROBES = 24  # context lengths timed for the no-cache baseline
STEP_TRIALS = 60  # timed single steps per position; the minimum is robust to a busy machine


@torch.no_grad()
def cached(model, n_tokens: int) -> tuple[float, list[float]]:
    """Greedy decoding with the KV cache; total seconds and seconds of each step."""
    ids = torch.tensor([[1]])
    steps = []
    start = time.perf_counter()
    logits, cache = model(ids)
    for _ in range(n_tokens - 1):
        t0 = time.perf_counter()
        token = logits[:, -1].argmax(-1, keepdim=True)
        logits, cache = model(token, cache=cache)
        steps.append(time.perf_counter() - t0)
    return time.perf_counter() - start, steps


@torch.no_grad()
def recompute(model, n_tokens: int, exact: bool) -> float:
    """Seconds of greedy decoding that re-runs the whole context every step (no cache).

    A step's cost depends only on the context length, so unless ``exact`` the total is the sum
    over lengths 1..n-1 of the step time interpolated between RECOMPUTE_PROBES measured lengths.
    """
    if exact:
        ids = torch.tensor([[1]])
        start = time.perf_counter()
        for _ in range(n_tokens - 1):
            logits, _ = model(ids)
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return time.perf_counter() - start
    lengths = np.linspace(1, n_tokens - 1, RECOMPUTE_PROBES).round().astype(int)
    ids = torch.randint(0, VOCAB, (1, n_tokens))
    times = []
    for length in lengths.tolist():
        t0 = time.perf_counter()
        logits, _ = model(ids[:, :length])
        logits[:, -1].argmax(-1)
        times.append(time.perf_counter() - t0)
    return float(np.interp(np.arange(1, n_tokens), lengths, times).sum())


@torch.no_grad()
def step_cost(model, position: int) -> float:
    """Seconds of one cached decoding step at ``position`` (minimum over STEP_TRIALS).

    The cache is filled to ``position`` and grown once, then the same step is repeated (each
    repetition rewrites slot ``position``), so every trial does exactly the real step's work.
    """
    _, cache = model(torch.randint(0, VOCAB, (1, position)))
    token = torch.tensor([[1]])
    _, grown = model(token, cache=cache)
    grown.length, grown.seen = position, position
    best = float("inf")
    for _ in range(STEP_TRIALS):
        t0 = time.perf_counter()
        model(token, cache=grown)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--pos", default="relative", choices=["relative", "absolute"])
    parser.add_argument("--exact", action="store_true", help="run the full no-cache baseline")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build("transformer", {**MODEL, "pos": args.pos}).eval()
    cached(model, 64)  # warm-up
    t_cache, _ = cached(model, args.tokens)
    t_full = recompute(model, args.tokens, args.exact)

    at100, at1000 = step_cost(model, 100), step_cost(model, min(1000, args.tokens - 1))
    print(f"model: transformer pos={args.pos} d=256 L=4 H=8 ff=1024 vocab={VOCAB}, 1 thread")
    print(f"{args.tokens} tokens, batch 1: cache {t_cache:.2f} s "
          f"({args.tokens / t_cache:.0f} tok/s), recompute {t_full:.2f} s"
          f"{'' if args.exact else ' (interpolated from timed lengths)'}")  # fmt: skip
    print(f"speed-up of the KV cache: {t_full / t_cache:.1f}x (target >= 10x)")
    print(f"ms/token (min of {STEP_TRIALS}) at position 100: {at100 * 1e3:.2f}, "
          f"at 1000: {at1000 * 1e3:.2f}, ratio {at1000 / at100:.2f} (target <= 1.3)")  # fmt: skip


if __name__ == "__main__":
    main()
