"""Held-out NLL per note of a token run on a prepared dataset, which may encode the same music
with fewer token types than the run's own (the same first ids).

Per-token NLL does not compare across encodings: a stream with control tokens has more tokens
per note, and a model trained with them also reads streams without them (the controls are
dropped from a fifth of its training pieces). So the shipped transformer, trained with control
tokens, is scored on the held-out files of the dataset without them, whose ids are the first
486 of its vocabulary, and the figure is total nats over the split's notes: comparable with any
run of the same notes, whatever its tokens.

    python bench/per_note_nll.py RUN DATASET [SPLIT ...]   (default split: test)
"""

from __future__ import annotations

import sys

from midiforge.metrics.likelihood import run_likelihood, single_thread
from midiforge.store.dataset_dir import PreparedDataset


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    run, dataset = sys.argv[1], sys.argv[2]
    notes_of = PreparedDataset(dataset).manifest["splits"]
    for split in sys.argv[3:] or ["test"]:
        with single_thread():
            res = run_likelihood(run, split, dataset=dataset)
        count, notes = res["count"], notes_of[split]["notes"]
        total = res["nats"] * count
        print(f"{run} on {dataset} {split}: {res['nats']:.4f} nats/token over {count} tokens, "
              f"{total / notes:.3f} nats/note over {notes} notes")  # fmt: skip


if __name__ == "__main__":
    main()
