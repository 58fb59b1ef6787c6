"""The BPE pass of ``prepare``: learn merges on the train split's ids, rewrite every split.

Both passes stream file by file from the base ids the dataset writer has just written
(memory-mapped, :meth:`midiforge.store.dataset_writer.SplitWriter.base_tokens`), so BPE costs
no extra parse of the MIDI files and no corpus-sized buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from midiforge.data.encode import apply_bpe, train_bpe
from midiforge.errors import MidiforgeError
from midiforge.store.dataset_dir import Sequences
from midiforge.store.dataset_writer import SplitWriter


def bpe_pass(
    writers: dict[str, SplitWriter],
    tokenizer,
    bpe_vocab: int,
    bos_eos: bool,
    specials: dict[str, int],
    records: list[dict[str, Any]],
) -> None:
    """Train BPE on the train split's base ids, then rewrite every split's tokens merged.

    ``records`` (the manifest's file entries) get ``tokens`` = the merged count and
    ``tokens_base`` = the count before merging.
    """
    cut = 1 if bos_eos else 0  # BOS/EOS stay outside BPE merges
    base = {split: writer.base_tokens() for split, writer in writers.items()}

    def inner(seqs: Sequences) -> Iterator[np.ndarray]:
        for i in range(len(seqs)):
            ids = seqs[i]
            yield ids[cut : len(ids) - cut]

    if len(writers["train"]) == 0:
        raise MidiforgeError("bpe_vocab: the train split holds no files to learn BPE from")
    train_bpe(tokenizer, lambda: inner(base["train"]), len(writers["train"]), bpe_vocab)
    by_place = {(r["split"], r["index"]): r for r in records if r["status"] == "kept"}

    def merged(split: str) -> Iterator[np.ndarray]:
        for i, ids in enumerate(inner(base[split])):
            out = apply_bpe(tokenizer, ids)
            if bos_eos:
                out = np.concatenate([[specials["BOS"]], out, [specials["EOS"]]])
            record = by_place[(split, i)]
            record["tokens_base"], record["tokens"] = record["tokens"], len(out)
            yield out

    for split, writer in writers.items():
        writer.replace_tokens(merged(split))
