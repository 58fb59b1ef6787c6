"""Benchmark: KV-cached decoding vs recomputing the whole context, and per-token cost vs position.

Targets (docs/benchmarks.md): 1024 tokens at batch 1 with the cache >= 10x faster than full
recompute each step; time per token at position 1000 <= 1.3x that at position 100.

Two models, at the thread count ``midiforge generate`` runs with (torch's default: every
core) unless ``--threads`` says otherwise:

* ``shipped`` — the default model ``midiforge generate`` uses (d_model 256, 4 layers, trained on
  256-token windows), decoded the way the sampler does it: once the context reaches the
  256-token window, each step trims the cache to the last 255 positions and appends one. Its
  "whole context" is the window, so the no-cache baseline recomputes up to 256 tokens a step.
* ``long`` — the same size with a 2048-token context (max_rel 1024) and untrained weights, so
  no window applies before position 1024: the cache grows the whole way, a stress test of
  memory-bound attention at this width.

Each model is decoded with the key/value cache in fp16 (what ``generate`` does on the CPU by
default: the C kernel converts on load, and a step's cost per cached position is reading the
cache) and in fp32 (exact; ``--kv-cache float32``). The no-cache baseline is fp32 either way.

    python bench/generate.py [--model shipped|long|both] [--tokens 1024] [--pos absolute] [--exact]
                             [--kv-cache both|float16|float32] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from midiforge.assets import DEFAULT_RUN_DIR
from midiforge.models.registry import build
from midiforge.store.run_dir import load_run

VOCAB = 300  # about a REMI vocabulary
MODEL = {"vocab_size": VOCAB, "d_model": 256, "n_layers": 4, "n_heads": 8, "d_ff": 1024,
         "max_seq_len": 2048, "max_rel": 1024, "dropout": 0.0}  # fmt: skip
RECOMPUTE_PROBES = 24  # context lengths timed for the no-cache baseline
STEP_TRIALS = 60  # timed single steps per position; the minimum is robust to a busy machine


@torch.inference_mode()
def recompute(model, n_tokens: int, exact: bool, window: int | None = None) -> float:
    """Seconds of greedy decoding that re-runs the whole context every step (no cache).

    The context is everything so far, or its last ``window`` tokens. A step's cost depends only
    on the context length, so unless ``exact`` the total is the sum over steps of the step time
    interpolated between RECOMPUTE_PROBES measured lengths (the fastest of three forwards each).
    """
    cap = window or n_tokens
    if exact:
        ids = torch.tensor([[1]])
        start = time.perf_counter()
        for _ in range(n_tokens - 1):
            logits, _ = model(ids[:, -cap:])
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return time.perf_counter() - start
    lengths = np.linspace(1, min(cap, n_tokens - 1), RECOMPUTE_PROBES).round().astype(int)
    ids = torch.randint(0, VOCAB, (1, n_tokens))
    times = []
    for length in lengths.tolist():
        best = float("inf")
        for _ in range(3):  # the fastest of three, as for the cached runs
            t0 = time.perf_counter()
            logits, _ = model(ids[:, :length])
            logits[:, -1].argmax(-1)
            best = min(best, time.perf_counter() - t0)
        times.append(best)
    contexts = np.minimum(np.arange(1, n_tokens), cap)
    return float(np.interp(contexts, lengths, times).sum())


@torch.inference_mode()
def cached(
    model, n_tokens: int, dtype: torch.dtype, window: int | None = None
) -> tuple[float, list[float]]:
    """Greedy decoding with a ``dtype`` KV cache; total seconds and seconds of each step.

    With a ``window``, each step past it trims the cache to its last ``window - 1`` positions
    with ``trim_cache`` and feeds one token, as ``midiforge.sampling.autoregressive.sample``
    does (that loop has no per-step clock, hence this copy of its two lines).
    """
    ids = torch.tensor([[1]])
    steps = []
    start = time.perf_counter()
    logits, cache = model(ids, cache=model.new_cache(dtype))
    length = 1
    for _ in range(n_tokens - 1):
        t0 = time.perf_counter()
        token = logits[:, -1].argmax(-1, keepdim=True)
        if window is not None and length >= window:
            cache, length = model.trim_cache(cache, window - 1), window - 1
        logits, cache = model(token, cache=cache)
        length += 1
        steps.append(time.perf_counter() - t0)
    return time.perf_counter() - start, steps


@torch.inference_mode()
def step_cost(model, position: int, dtype: torch.dtype) -> float:
    """Seconds of one ``dtype``-cached decoding step at ``position`` (min over STEP_TRIALS).

    The cache is filled to ``position`` and grown once, then the same step is repeated (each
    repetition rewrites slot ``position``), so every trial does exactly the real step's work.
    """
    _, cache = model(torch.randint(0, VOCAB, (1, position)), cache=model.new_cache(dtype))
    token = torch.tensor([[1]])
    _, grown = model(token, cache=cache)
    grown.length, grown.seen = position, position
    best = float("inf")
    for _ in range(STEP_TRIALS):
        t0 = time.perf_counter()
        model(token, cache=grown)
        best = min(best, time.perf_counter() - t0)
    return best


def report(name: str, n_tokens: int, t_cache: float, t_full: float, exact: bool) -> None:
    print(f"[{name}] {n_tokens} tokens, batch 1: cache {t_cache:.2f} s "
          f"({n_tokens / t_cache:.0f} tok/s), recompute {t_full:.2f} s"
          f"{'' if exact else ' (interpolated from timed lengths)'}")  # fmt: skip
    print(f"[{name}] speed-up of the KV cache: {t_full / t_cache:.1f}x (target >= 10x)")


def cache_dtypes(args) -> list[torch.dtype]:
    names = ["float16", "float32"] if args.kv_cache == "both" else [args.kv_cache]
    return [getattr(torch, n) for n in names]


def ratio_line(name: str, at100: float, at1000: float, how: str) -> None:
    print(f"[{name}] ms/token ({how}) at position 100: {at100 * 1e3:.2f}, "
          f"at 1000: {at1000 * 1e3:.2f}, ratio {at1000 / at100:.2f} (target <= 1.3)")  # fmt: skip


def shipped(args) -> None:
    model = load_run(DEFAULT_RUN_DIR).model.float().eval()
    window = model.max_seq_len
    cfg = model.config
    print(f"[shipped] default model: pos={cfg.pos} d={cfg.d_model} L={cfg.n_layers} "
          f"H={cfg.n_heads} ff={cfg.d_ff}, window {window}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    t_full = recompute(model, args.tokens, args.exact, window)
    for dtype in cache_dtypes(args):
        name = f"shipped, {str(dtype)[6:]} cache"
        cached(model, 64, dtype, window)  # warm-up
        # the fastest of three full runs (by total time), and its step times
        best_total, per_step = min(cached(model, args.tokens, dtype, window) for _ in range(3))
        report(name, args.tokens, best_total, t_full, args.exact)
        # step i of the list feeds the token at position i + 1; the 60 steps from a position on
        # do the same work there (same cache length, past the window), so take their minimum
        at100, at1000 = (min(per_step[p - 1 : p - 1 + STEP_TRIALS])
                         for p in (100, min(1000, args.tokens - STEP_TRIALS - 1)))  # fmt: skip
        ratio_line(name, at100, at1000, f"min of the {STEP_TRIALS} steps from there")


def long(args) -> None:
    model = build("transformer", {**MODEL, "pos": args.pos}).eval()
    print(f"[long] transformer pos={args.pos} d=256 L=4 H=8 ff=1024 vocab={VOCAB}, "
          f"context 2048, max_rel 1024, no window before 2048, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    t_full = recompute(model, args.tokens, args.exact)
    for dtype in cache_dtypes(args):
        name = f"long, {str(dtype)[6:]} cache"
        cached(model, 64, dtype)  # warm-up
        t_cache = min(cached(model, args.tokens, dtype)[0] for _ in range(3))  # fastest of three
        report(name, args.tokens, t_cache, t_full, args.exact)
        at100 = step_cost(model, 100, dtype)
        at1000 = step_cost(model, min(1000, args.tokens - 1), dtype)
        ratio_line(name, at100, at1000, f"min of {STEP_TRIALS} repeats of the step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="both", choices=["shipped", "long", "both"])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--pos", default="relative", choices=["relative", "absolute"],
                        help="positions of the long model")  # fmt: skip
    parser.add_argument("--exact", action="store_true", help="run the full no-cache baseline")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default, as generate runs)")  # fmt: skip
    parser.add_argument("--kv-cache", default="both", choices=["both", "float16", "float32"],
                        help="dtype of the decoding cache (default: both, fp16 first)")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model in ("shipped", "both"):
        shipped(args)
    if args.model in ("long", "both"):
        long(args)


if __name__ == "__main__":
    main()
