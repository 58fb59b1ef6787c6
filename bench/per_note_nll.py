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

import torch

from midiforge.data.dataset import TokenWindows
from midiforge.metrics.likelihood import _weighted_losses
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    run, dataset = sys.argv[1], sys.argv[2]
    loaded = load_run(run)
    data = PreparedDataset(dataset)
    if data.vocab_size > loaded.model.config.vocab_size:
        raise SystemExit(f"{dataset} has ids the run {run} does not know")
    seq_len = int((loaded.config.get("train") or {}).get("seq_len", 256))
    for split in sys.argv[3:] or ["test"]:
        windows = TokenWindows(data, split, seq_len, train=False)
        sums, count = _weighted_losses(loaded.model, windows)
        notes = data.manifest["splits"][split]["notes"]
        total = sums["loss"]
        print(f"{run} on {dataset} {split}: {total / count:.4f} nats/token over {count} tokens, "
              f"{total / notes:.3f} nats/note over {notes} notes")  # fmt: skip


if __name__ == "__main__":
    main()
