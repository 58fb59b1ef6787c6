"""Benchmark: Mittal et al.'s Consistency/Variance of two halves of Nottingham, frames before/after.

Two halves of one corpus are as alike as two sets of music get, so their Consistency and
Variance are the ceiling a model can reach. Before the fix, frames started every 2 bars up to
the last onset, so each piece ended in a stub frame or two holding a note or two. Now frames lie
inside the piece (:mod:`midiforge.metrics.self_similarity`), and bars are each tune's own
(6/8 → 3 beats) instead of always 4/4. Printed: Consistency/Variance of the name-sorted halves
under each rule, how far Variance moves over random halves, and the overlaps of the stub pairs
the fix drops against those it keeps.

Then the same with every tune read up to its first B bars (``max_bars``, default 32): equal
lengths, as in Mittal et al.'s fixed-length sequences, so a few long tunes do not set the
pooled variance.

Target (issue): Variance ≥ 0.8 for pitch and duration after the frame fix.

    python bench/self_similarity.py [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
from pathlib import Path

import numpy as np
import symusic

from midiforge.metrics import music
from midiforge.metrics import self_similarity as ss

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MIDIFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))
VARIANCE_TARGET = 0.8
RANDOM_SPLITS = 200  # random halves that show how much Variance moves with the split


def frame_overlaps_to_last_onset(notes: np.ndarray, beats_per_bar: float) -> dict[str, list]:
    """The rule before the fix, kept here only to show the change: frames start every
    ``HOP_BARS`` bars up to the last onset, even where the piece ends inside them."""
    frame, hop = ss.FRAME_BARS * beats_per_bar, ss.HOP_BARS * beats_per_bar
    stats = []
    for start in np.arange(0.0, float(notes[:, music.ONSET].max()) + 1e-9, hop):
        inside = notes[(notes[:, music.ONSET] >= start) & (notes[:, music.ONSET] < start + frame)]
        stats.append(
            None
            if len(inside) == 0
            else [(inside[:, k].mean(), inside[:, k].std()) for k in (music.PITCH, music.DURATION)]
        )
    out: dict[str, list] = {"pitch": [], "duration": []}
    for prev, cur in itertools.pairwise(stats):
        if prev is not None and cur is not None:
            for i, key in enumerate(("pitch", "duration")):
                out[key].append(ss.gaussian_overlap(*prev[i], *cur[i]))
    return out


def _match(value: float, truth: float) -> float:
    return max(0.0, 1.0 - abs(value - truth) / truth)


def pooled_cv(overlaps: list[dict[str, list]], a: np.ndarray, b: np.ndarray) -> dict:
    """Consistency/Variance of pieces ``a`` against pieces ``b`` from per-piece overlaps."""
    out = {}
    for key in ("pitch", "duration"):
        va = np.concatenate([overlaps[i][key] for i in a])
        vb = np.concatenate([overlaps[i][key] for i in b])
        out[key] = {
            "consistency": _match(va.mean(), vb.mean()),
            "variance": _match(va.var(), vb.var()),
        }
    return out


def print_halves(rules: dict[str, list], first: np.ndarray, second: np.ndarray) -> None:
    print(f"{'first half against second half':40s} pitch C   pitch V   dur. C    dur. V")
    for name, overlaps in rules.items():
        cv = pooled_cv(overlaps, first, second)
        cells = [cv[k][s] for k in ("pitch", "duration") for s in ("consistency", "variance")]
        print(f"{name:40s} " + "  ".join(f"{c:8.3f}" for c in cells))


def print_random_halves(rules: dict[str, list], n: int, splits: int) -> None:
    rng = np.random.default_rng(0)
    perms = [rng.permutation(n) for _ in range(splits)]
    print(f"\nVariance over {splits} random halves (seeded): median [5% .. 95%]")
    for name, overlaps in rules.items():
        cells = []
        for key in ("pitch", "duration"):
            v = [pooled_cv(overlaps, p[: n // 2], p[n // 2 :])[key]["variance"] for p in perms]
            q5, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95])
            cells.append(f"{key} {q50:.3f} [{q5:.3f} .. {q95:.3f}]")
        pairs = sum(len(o["pitch"]) for o in overlaps)
        print(f"{name:40s} {pairs:6d} pairs  " + "   ".join(cells))


def print_stub_pairs(before: list[dict], inside: list[dict]) -> None:
    """The pairs the fix drops (the old rule's frames past the last inside one), 4/4 both."""
    print()
    for key in ("pitch", "duration"):
        stub = np.concatenate([b[key][len(i[key]) :] for b, i in zip(before, inside)])
        kept = np.concatenate([i[key] for i in inside])
        print(f"{key}: {len(stub)} stub pairs dropped, overlap mean {stub.mean():.3f} variance "
              f"{stub.var():.4f}; the {len(kept)} kept: mean {kept.mean():.3f} variance "
              f"{kept.var():.4f}")  # fmt: skip


def print_caps(pieces: list, first: np.ndarray, second: np.ndarray, n: int, splits: int) -> dict:
    """Consistency/Variance with every tune read up to B bars, for several B; returns B=32's."""
    print(f"\nframes inside, own bars, each tune read up to B bars ({splits} random halves)")
    print(f"{'B':>6}  pitch C  pitch V  dur. C   dur. V   random-halves V median [5%]")
    rng = np.random.default_rng(0)
    perms = [rng.permutation(n) for _ in range(splits)]
    chosen = {}
    for cap in (None, 64, ss.MAX_BARS, 16):
        overlaps = [ss.frame_overlaps(p.notes, p.beats_per_bar, cap) for p in pieces]
        cv = pooled_cv(overlaps, first, second)
        cells = [cv[k][s] for k in ("pitch", "duration") for s in ("consistency", "variance")]
        spread = []
        for key in ("pitch", "duration"):
            v = [pooled_cv(overlaps, p[: n // 2], p[n // 2 :])[key]["variance"] for p in perms]
            spread.append(f"{np.median(v):.3f} [{np.quantile(v, 0.05):.3f}]")
        print(f"{cap or 'whole':>6}  " + "  ".join(f"{c:7.3f}" for c in cells) + "   "
              + " / ".join(spread))  # fmt: skip
        if cap == ss.MAX_BARS:
            chosen = cv
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--splits", type=int, default=RANDOM_SPLITS, help="random halves")
    args = parser.parse_args()
    files = sorted((args.datasets / "nottingham").glob("*.mid"), key=lambda f: f.name)
    start = time.perf_counter()
    pieces = [music.piece_from_score(symusic.Score(str(f))) for f in files]
    n, half = len(pieces), len(pieces) // 2
    first, second = np.arange(half), np.arange(half, n)
    meters = sorted({p.beats_per_bar for p in pieces})
    print(f"Nottingham: {n} tunes; halves {files[0].name}..{files[half - 1].name} and "
          f"{files[half].name}..{files[-1].name} (sorted file names)")  # fmt: skip
    print(f"bar lengths in beats: {', '.join(f'{m:g}' for m in meters)}")
    bar = music.BEATS_PER_BAR
    rules = {
        "before: frames to the last onset, 4/4": [
            frame_overlaps_to_last_onset(p.notes, bar) for p in pieces
        ],
        "after: frames inside the piece, 4/4": [ss.frame_overlaps(p.notes, bar) for p in pieces],
        "after: frames inside, own bars": [
            ss.frame_overlaps(p.notes, p.beats_per_bar) for p in pieces
        ],
    }
    print_halves(rules, first, second)
    print_random_halves(rules, n, args.splits)
    print_stub_pairs(*list(rules.values())[:2])
    after = print_caps(pieces, first, second, n, args.splits)
    # the library's own Consistency/Variance (its default: up to MAX_BARS bars) gives the same
    library = ss.consistency_variance(
        [pieces[i].notes for i in first], [pieces[i].notes for i in second],
        [pieces[i].beats_per_bar for i in first], [pieces[i].beats_per_bar for i in second],
    )  # fmt: skip
    for key in ("pitch", "duration"):
        assert math.isclose(library[key]["variance"], after[key]["variance"], rel_tol=1e-9)
    worst = min(after[k]["variance"] for k in ("pitch", "duration"))
    ok = not math.isnan(worst) and worst >= VARIANCE_TARGET
    seconds = time.perf_counter() - start
    print(f"\nworst Variance (name-sorted halves, up to {ss.MAX_BARS} bars): {worst:.3f} "
          f"(target >= {VARIANCE_TARGET}): {'PASS' if ok else 'FAIL'}; "
          f"{seconds:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
