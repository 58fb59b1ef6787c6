"""Train and score one published likelihood protocol; print our figure against the published one.

    python bench/published_benchmarks.py jsb16 --model transformer --steps 1500
    python bench/published_benchmarks.py polyphonic --corpus nottingham --model lstm

The ratio printed is ours / the best published figure of the protocol (≤ 1 meets the target).
The baseline measured in the same run is the uniform model (ln V per token), printed beside it.
"""

from __future__ import annotations

import argparse
import math
import time

from midiforge.metrics import benchmarks as bm
from midiforge.training import benchmark as training_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=["jsb16", "polyphonic"])
    parser.add_argument("--corpus", default="jsb", choices=sorted(bm.POLY_SETS))
    parser.add_argument("--model", default="transformer", choices=training_bench.BENCH_MODELS)
    parser.add_argument("--steps", type=int, default=training_bench.DEFAULT_TRAIN["steps"])
    parser.add_argument("--out", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    started = time.perf_counter()
    res = training_bench.benchmark(
        args.name,
        corpus=args.corpus,
        model=args.model,
        out=args.out,
        device="cpu",
        overrides=[f"train.steps={args.steps}", *args.overrides],
    )
    key = "jsb16" if args.name == "jsb16" else f"polyphonic/{args.corpus}"
    split = "valid" if args.name == "jsb16" else "test"
    best = min(v for _, v, s in bm.PUBLISHED[key] if s == split) if bm.PUBLISHED[key] else None
    ours = res.scores[split]["nats"]
    vocab = bm.JSB16_VOCAB if args.name == "jsb16" else bm.POLY_VOCAB
    print(res.table())
    print(f"uniform baseline: {math.log(vocab):.3f} nats/token")
    if best is not None:
        print(f"ratio ours/best published ({split}): {ours / best:.3f}  ({ours:.3f} vs {best:.3f})")
    print(f"wall time: {time.perf_counter() - started:.0f} s; run dir: {res.run_dir}")


if __name__ == "__main__":
    main()
