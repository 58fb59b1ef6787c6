"""Writing a DATASET dir's arrays: one split at a time, one file at a time.

:class:`SplitWriter` appends each file's token ids and note rows to the split's flat ``.bin``
files as soon as they arrive and keeps only the offsets, so ``prepare`` never holds the
corpus' arrays in memory. :func:`bpe_pass` re-reads those base ids memory-mapped, trains BPE
on the train split and rewrites every split merged, again streaming file by file.
The format itself is documented in docs/architecture.md and read by
:class:`midiforge.data.dataset.PreparedDataset`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.data.encode import apply_bpe, train_bpe
from midiforge.errors import MidiforgeError


class SplitWriter:
    """Appends one split's files to flat .bin files and remembers only the offsets."""

    def __init__(self, root: Path, split: str) -> None:
        self.split = split
        self.tokens_path = root / "tokens" / f"{split}.bin"
        self.notes_path = root / "notes" / f"{split}.bin"
        self.root = root
        self._tokens = self.tokens_path.open("wb")
        self._notes = self.notes_path.open("wb")
        self.token_offsets = [0]
        self.note_offsets = [0]
        self.labels: list[str | None] = []

    def add(self, ids: np.ndarray, notes: np.ndarray, label: str | None) -> int:
        self._tokens.write(np.ascontiguousarray(ids, np.int32).tobytes())
        self._notes.write(np.ascontiguousarray(notes, np.float32).tobytes())
        self.token_offsets.append(self.token_offsets[-1] + len(ids))
        self.note_offsets.append(self.note_offsets[-1] + len(notes))
        self.labels.append(label)
        return len(self.labels) - 1

    def flush_tokens(self) -> None:
        """Finish the token file so it can be read back (the BPE pass rewrites it)."""
        self._tokens.close()

    def close(self, label_names: list[str]) -> dict[str, int]:
        self._tokens.close()
        self._notes.close()
        np.save(
            self.root / "tokens" / f"{self.split}.offsets.npy",
            np.array(self.token_offsets, np.int64),
        )
        np.save(
            self.root / "notes" / f"{self.split}.offsets.npy", np.array(self.note_offsets, np.int64)
        )
        index = {name: i for i, name in enumerate(label_names)}
        labels = np.array([index.get(lab, -1) if lab else -1 for lab in self.labels], np.int64)
        np.save(self.root / "labels" / f"{self.split}.npy", labels)
        return {
            "files": len(self.labels),
            "tokens": self.token_offsets[-1],
            "notes": self.note_offsets[-1],
        }


def bpe_pass(
    writers: dict[str, SplitWriter],
    tokenizer,
    bpe_vocab: int,
    bos_eos: bool,
    specials: dict[str, int],
    records: list[dict[str, Any]],
) -> None:
    """Train BPE on the train split's base ids, then rewrite every split's tokens merged.

    Both passes stream file by file from the memory-mapped base arrays just written, so BPE
    costs no extra parse of the MIDI files and no corpus-sized buffer.
    """
    cut = 1 if bos_eos else 0  # BOS/EOS stay outside BPE merges

    def base_ids(writer: SplitWriter):
        def files():
            n = writer.token_offsets[-1]
            if n == 0:
                return
            flat = np.memmap(writer.tokens_path, np.int32, "r", shape=(n,))
            for a, b in zip(writer.token_offsets[:-1], writer.token_offsets[1:]):
                yield flat[a + cut : b - cut]

        return files

    for writer in writers.values():
        writer.flush_tokens()
    train = writers["train"]
    if not train.labels:
        raise MidiforgeError("bpe_vocab: the train split holds no files to learn BPE from")
    train_bpe(tokenizer, base_ids(train), len(train.labels), bpe_vocab)
    by_place = {(r["split"], r["index"]): r for r in records if r["status"] == "kept"}
    for split, writer in writers.items():
        merged_path = writer.tokens_path.with_suffix(".bpe")
        offsets = [0]
        with merged_path.open("wb") as fh:
            for i, ids in enumerate(base_ids(writer)()):
                merged = apply_bpe(tokenizer, ids)
                if bos_eos:
                    merged = np.concatenate([[specials["BOS"]], merged, [specials["EOS"]]])
                fh.write(merged.astype(np.int32).tobytes())
                offsets.append(offsets[-1] + len(merged))
                by_place[(split, i)]["tokens_base"] = by_place[(split, i)]["tokens"]
                by_place[(split, i)]["tokens"] = len(merged)
        os.replace(merged_path, writer.tokens_path)
        writer.token_offsets = offsets
