"""How much real held-out music shares with training: the reference for the memorization audit.

    python bench/memorization_heldout.py DATASET [--notes 256] [--split test]

For each style of a prepared dataset, each held-out piece's first ``--notes`` notes (the length
of ``scripts/evaluate_shipped.py``'s note-model samples) go through the same audit as generated
pieces (:func:`midiforge.metrics.memorization.memorization_audit`: the longest run of moves,
pitch interval and onset gap, shared with any training piece of that style). Why: the issue's
"longest run shared with training ≤ 16 notes" reads as copying only beside what a piece of the
style that was never trained on shares by itself (folk tunes come in variants; chorale melodies
recur with new harmonies). Prints per style the pieces, the most and the median run, and the
share of pieces above 16 notes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from midiforge.metrics.evaluate import load_reference
from midiforge.metrics.memorization import DEFAULT_THRESHOLD_NOTES, memorization_audit
from midiforge.metrics.music import ONSET

LIMIT_NOTES = 16  # the acceptance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a prepared dataset with labels")
    parser.add_argument("--notes", type=int, default=256, help="notes read of each piece")
    parser.add_argument("--split", default="test", help="the held-out split (valid or test)")
    args = parser.parse_args()
    from midiforge.store.dataset_dir import PreparedDataset

    for style in PreparedDataset(args.dataset).labels:
        held, train, _ = load_reference(args.dataset, args.split, style)
        first = [p.notes[np.argsort(p.notes[:, ONSET], kind="stable")][: args.notes] for p in held]
        runs = np.array(
            memorization_audit(first, [p.notes for p in train], DEFAULT_THRESHOLD_NOTES)[
                "longest_runs"
            ]
        )
        print(
            f"{style}: {len(runs)} {args.split} pieces, longest shared run max {runs.max()} "
            f"median {int(np.median(runs))}, above {LIMIT_NOTES} notes "
            f"{100 * np.mean(runs > LIMIT_NOTES):.0f} %"
        )


if __name__ == "__main__":
    main()
