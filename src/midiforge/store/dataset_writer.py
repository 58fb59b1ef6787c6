"""Writing a DATASET dir: the one writer, used by ``prepare`` and the benchmark encoders.

:class:`DatasetWriter` builds the whole folder in a hidden temporary sibling of OUT and renames
it into place only in :meth:`DatasetWriter.commit`, so OUT appears complete or not at all (also
after Ctrl-C). Each split's :class:`SplitWriter` appends every file's token ids and note rows to
the split's flat ``.bin`` files as soon as they arrive and keeps only the offsets, so a writer
never holds the corpus' arrays in memory. The layout is in ``docs/architecture.md`` and read
back by :class:`midiforge.store.dataset_dir.PreparedDataset`.

:func:`pack_file` turns one file's arrays into the bytes the split files hold (a
:class:`PackedFile`) wherever the file was encoded: ``prepare``'s worker processes pack, so the
one process that writes only appends bytes (its per-file cost bounds the parallel speed-up).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from midiforge.errors import MidiforgeError, choice_error
from midiforge.schema import FIELD, NO_LABEL, NOTE_FIELDS
from midiforge.store.dataset_dir import (
    NOTE_DTYPE,
    TOKEN_DTYPE,
    Sequences,
    map_arrays,
    write_manifest,
)
from midiforge.store.names import (
    DATASET_FORMAT,
    DATASET_FORMAT_VERSION,
    LABELS_DIR,
    NOTES_DIR,
    SPLITS,
    TOKENS_DIR,
    arrays_path,
    labels_path,
    offsets_path,
)
from midiforge.store.tokenizer_file import save_tokenizer
from midiforge.store.versions import software_versions

TOKEN_BYTES = np.dtype(TOKEN_DTYPE).itemsize
NOTE_ROW_BYTES = np.dtype(NOTE_DTYPE).itemsize * len(NOTE_FIELDS)
SCRATCH_DIR = "scratch"  # the caller's files inside the temporary folder; gone at commit
TEMP_TAG = ".tmp-"  # OUT is built in OUT.parent/.{OUT.name}.tmp-{pid}
OLD_TAG = ".old-"  # the previous OUT while the new one is renamed into place


class PackedFile(NamedTuple):
    """One file's arrays as a split's ``.bin`` files store them: one ``bytes``, cheap to send
    between processes and to append."""

    tokens: int  # token ids at the start of ``data`` (TOKEN_DTYPE)
    notes: int  # note rows after them (NOTE_DTYPE, len(NOTE_FIELDS) columns, C order)
    programs: dict[int, int]  # GM program (-1 drums) → notes of it in this file
    data: bytes | memoryview

    @property
    def size(self) -> int:
        """Bytes ``data`` holds (also when it is not here: sent on separately)."""
        return self.tokens * TOKEN_BYTES + self.notes * NOTE_ROW_BYTES


def pack_file(ids: np.ndarray, notes: np.ndarray) -> PackedFile:
    """Token ids ``[n]`` and note rows ``[m, len(NOTE_FIELDS)]`` as :meth:`SplitWriter.add_packed`
    takes them (the dtype conversion and the program count happen here, not in the writer)."""
    notes = np.ascontiguousarray(notes, NOTE_DTYPE)
    if notes.ndim != 2 or notes.shape[1] != len(NOTE_FIELDS):
        raise MidiforgeError(
            f"note rows of shape {list(notes.shape)}; a DATASET stores "
            f"[n, {len(NOTE_FIELDS)}] rows ({', '.join(NOTE_FIELDS)})"
        )
    values, counts = np.unique(notes[:, FIELD["program"]].astype(np.int64), return_counts=True)
    data = np.ascontiguousarray(ids, TOKEN_DTYPE).tobytes() + notes.tobytes()
    return PackedFile(len(ids), len(notes), dict(zip(values.tolist(), counts.tolist())), data)


class SplitWriter:
    """Appends one split's files to flat ``.bin`` files and remembers only the offsets."""

    def __init__(self, root: Path, split: str) -> None:
        self.root, self.split = root, split
        self.tokens_path = arrays_path(root, TOKENS_DIR, split)
        self.notes_path = arrays_path(root, NOTES_DIR, split)
        self._tokens = self.tokens_path.open("wb")
        self._notes = self.notes_path.open("wb")
        self.token_offsets = [0]
        self.note_offsets = [0]
        self.labels: list[str | None] = []
        self.programs: Counter[int] = Counter()  # GM program (-1 drums) → notes

    def __len__(self) -> int:
        """Files added so far."""
        return len(self.labels)

    def add(self, ids: np.ndarray, notes: np.ndarray, label: str | None) -> int:
        """Append one file: token ids ``[n]``, note rows ``[m, len(NOTE_FIELDS)]``; → its index."""
        return self.add_packed(pack_file(ids, notes), label)

    def add_packed(self, packed: PackedFile, label: str | None) -> int:
        """Append one file packed by :func:`pack_file`; → its index."""
        cut = packed.tokens * TOKEN_BYTES
        view = memoryview(packed.data)
        self._tokens.write(view[:cut])
        self._notes.write(view[cut:])
        self.token_offsets.append(self.token_offsets[-1] + packed.tokens)
        self.note_offsets.append(self.note_offsets[-1] + packed.notes)
        self.labels.append(label)
        self.programs.update(packed.programs)
        return len(self.labels) - 1

    def base_tokens(self) -> Sequences:
        """Finish the token stream and memory-map it (a BPE pass re-reads what was written)."""
        self._tokens.close()
        flat = map_arrays(self.tokens_path, TOKEN_DTYPE, self.token_offsets[-1], 1)
        return Sequences(flat, np.array(self.token_offsets, np.int64))

    def replace_tokens(self, files: Iterable[np.ndarray]) -> None:
        """Rewrite the split's tokens, one array per file in order (e.g. BPE-merged ids).

        ``files`` may read the old tokens (:meth:`base_tokens`) while this writes: the new
        stream goes to a sibling file that replaces the old one at the end.
        """
        offsets = [0]
        new_path = self.tokens_path.with_suffix(".new")
        with new_path.open("wb") as fh:
            for ids in files:
                fh.write(np.ascontiguousarray(ids, TOKEN_DTYPE).tobytes())
                offsets.append(offsets[-1] + len(ids))
        if len(offsets) != len(self.token_offsets):
            raise MidiforgeError(
                f"split {self.split}: {len(offsets) - 1} token files given to replace "
                f"{len(self.token_offsets) - 1}"
            )
        os.replace(new_path, self.tokens_path)
        self.token_offsets = offsets

    def release(self, *, quiet: bool = False) -> None:
        """Close the open array files (closing twice is harmless).

        ``quiet``: when aborting, a close that cannot flush (a full disk) is no further error.
        """
        for fh in (self._tokens, self._notes):
            if quiet:
                with contextlib.suppress(OSError):
                    fh.close()
            else:
                fh.close()

    def close(self, label_names: list[str]) -> dict[str, int]:
        """Write the offsets and the label indices; → the manifest's entry for this split."""
        self.release()
        for kind, offsets in ((TOKENS_DIR, self.token_offsets), (NOTES_DIR, self.note_offsets)):
            np.save(offsets_path(self.root, kind, self.split), np.array(offsets, np.int64))
        index = {name: i for i, name in enumerate(label_names)}
        labels = [index.get(lab, NO_LABEL) if lab else NO_LABEL for lab in self.labels]
        np.save(labels_path(self.root, self.split), np.array(labels, np.int64))
        return {
            "files": len(self.labels),
            "tokens": self.token_offsets[-1],
            "notes": self.note_offsets[-1],
        }


def _dead(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's live process
    return False


def remove_stale_temps(out: Path) -> None:
    """Delete temp dirs of earlier writes of ``out`` whose process no longer exists
    (killed with SIGKILL or by a power cut, so their own cleanup never ran).

    A process killed between the two renames of :meth:`DatasetWriter.commit` leaves no OUT
    but the previous one as ``.OUT.old-PID``: it is renamed back, so nothing is lost.
    """
    for old in out.parent.glob(f".{out.name}{TEMP_TAG}*"):
        if _dead(old.name.rsplit("-", 1)[-1]):
            shutil.rmtree(old, ignore_errors=True)
    for old in out.parent.glob(f".{out.name}{OLD_TAG}*"):
        if _dead(old.name.rsplit("-", 1)[-1]):
            if out.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.rename(out)


class DatasetWriter:
    """Builds the DATASET dir ``out`` in a temporary sibling; :meth:`commit` puts it in place.

    Use it as a context manager: leaving the block without a commit (by an exception, Ctrl-C
    included) removes the temporary folder and leaves ``out`` as it was. An existing ``out`` is
    replaced whole at commit; whether that is allowed is the caller's decision (``prepare
    --overwrite``).
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.out)
        self.path = self.out.parent / f".{self.out.name}{TEMP_TAG}{os.getpid()}"
        self.committed = False
        self.splits: dict[str, SplitWriter] = {}
        try:
            if self.path.exists():
                shutil.rmtree(self.path)
            for sub in (TOKENS_DIR, NOTES_DIR, LABELS_DIR):
                (self.path / sub).mkdir(parents=True)
            self.splits = {split: SplitWriter(self.path, split) for split in SPLITS}
        except OSError as exc:  # name OUT, not the hidden temporary folder
            self.abort()
            exc.filename, exc.filename2 = str(self.out), None
            raise

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        if not self.committed:
            self.abort()  # OUT stays as it was: no half-written dataset, no temporary folder
        if isinstance(exc, OSError) and (exc.filename is None or TEMP_TAG in str(exc.filename)):
            exc.filename, exc.filename2 = str(self.out), None  # a full disk names no file

    def add(self, split: str, ids: np.ndarray, notes: np.ndarray, label: str | None) -> int:
        """Append one file to ``split``; → its index in the split's arrays."""
        return self.add_packed(split, pack_file(ids, notes), label)

    def add_packed(self, split: str, packed: PackedFile, label: str | None) -> int:
        """Append one file packed by :func:`pack_file` to ``split``; → its index."""
        if split not in self.splits:
            raise choice_error("split", split, SPLITS)
        return self.splits[split].add_packed(packed, label)

    def scratch(self) -> Path:
        """A folder for the caller's temporary files (``prepare``'s workers hand their packed
        arrays over through it), inside the temporary folder: removed with it on abort, and
        before the rename at commit."""
        folder = self.path / SCRATCH_DIR
        folder.mkdir(exist_ok=True)
        return folder

    def save_tokenizer(self, tokenizer: Any) -> None:
        """Store the tokenizer the token ids were encoded with (``tokenizer.json``)."""
        save_tokenizer(tokenizer, self.path)

    def commit(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Close every split, write the manifest, rename the folder into place; → the manifest.

        ``manifest`` holds the caller's entries (``options``, ``tokenizer``, ``labels``,
        ``files``, ``summary``); the writer adds ``format``, ``format_version``, ``versions``
        (unless given), ``note_fields``, ``splits`` and ``instruments`` (GM program, -1 for
        drums, as a string → notes in the train split, from the note rows' program column: what
        a model trained on this dataset can play). Label names index ``labels/{split}.npy``.
        """
        labels = list(manifest.get("labels") or [])
        shutil.rmtree(self.path / SCRATCH_DIR, ignore_errors=True)
        splits = {split: writer.close(labels) for split, writer in self.splits.items()}
        full = {
            "format": DATASET_FORMAT,
            "format_version": DATASET_FORMAT_VERSION,
            "versions": software_versions(),
            **manifest,
            "note_fields": list(NOTE_FIELDS),
            "labels": labels,
            "splits": splits,
            "instruments": {
                str(p): n for p, n in sorted(self.splits[SPLITS[0]].programs.items()) if n
            },
        }
        write_manifest(self.path, full)
        old = self.out.parent / f".{self.out.name}{OLD_TAG}{os.getpid()}"
        if self.out.exists():
            self.out.rename(old)
        self.path.rename(self.out)
        self.committed = True
        if old.exists():
            shutil.rmtree(old)
        return full

    def abort(self) -> None:
        """Drop everything written so far."""
        for writer in self.splits.values():
            writer.release(quiet=True)
        shutil.rmtree(self.path, ignore_errors=True)
