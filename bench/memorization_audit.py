"""Memorization audit speed: hashed n-gram binary search vs the direct all-pairs search.

    python bench/memorization_audit.py [--train 60] [--generated 6]

Both find, for each generated piece, the longest run of moves (interval, onset gap) shared with
any training piece; the baseline compares every pair of start positions (O(n·m) pairs, each
extended as far as it matches), the audit hashes windows and binary-searches the run length.
Prints both times, checks the answers agree, and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import symusic

from midiforge.metrics import memorization, music

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=60, help="training pieces")
    parser.add_argument("--generated", type=int, default=6, help="generated pieces")
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    files = sorted((args.datasets / "nottingham").glob("*.mid"))
    pieces = [music.pitch_onset_duration(symusic.Score(str(f))) for f in files[: args.train + 20]]
    train, others = pieces[: args.train], pieces[args.train :]
    rng = np.random.default_rng(0)
    generated = []
    for i in range(args.generated):  # an unseen tune with a transposed training passage pasted in
        src = train[int(rng.integers(len(train)))][10 : 10 + 8 * (i + 1)].copy()
        src[:, 0] += 5
        host = others[i % len(others)]
        src[:, 1] += host[-1, 1] + 1
        generated.append(np.concatenate([host, src]))
    n_train = sum(len(p) for p in train)
    print(f"{len(generated)} generated pieces vs {len(train)} training pieces ({n_train} notes)")
    t0 = time.perf_counter()
    fast = memorization.memorization_audit(generated, train)["longest_runs"]
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [memorization.longest_shared_run_exhaustive(g, train) for g in generated]
    t_slow = time.perf_counter() - t0
    if fast != slow:
        raise SystemExit(f"disagreement: hashed {fast} vs all-pairs {slow}")
    print(f"longest shared runs (notes): {fast}")
    print(f"all-pairs baseline: {t_slow:.2f} s; hashed audit: {t_fast:.3f} s")
    print(f"speed-up ratio: {t_slow / t_fast:.0f}x")


if __name__ == "__main__":
    main()
