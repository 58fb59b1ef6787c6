"""Reading a DATASET dir: its manifest, checked on open, and its memory-mapped arrays.

The arrays are memory-mapped, so opening a dataset costs the size of its offsets, not of its
tokens, and a DataLoader's worker processes share the page cache instead of copies. The
layout is documented in ``docs/architecture.md``; :mod:`midiforge.store.dataset_writer` is the
one writer, and the torch training windows over these arrays live in
:mod:`midiforge.data.dataset`.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.errors import MidiforgeError, choice_error
from midiforge.schema import ALL_STYLES, NOTE_FIELDS
from midiforge.store import atomic
from midiforge.store.names import (
    DATASET_FORMAT,
    DATASET_FORMAT_VERSION,
    MANIFEST_FILE,
    NOTES_DIR,
    SPLITS,
    TOKENS_DIR,
    arrays_path,
    labels_path,
    manifest_path,
    offsets_path,
    tokenizer_path,
)
from midiforge.store.tokenizer_file import load_tokenizer

TOKEN_DTYPE = np.int32
NOTE_DTYPE = np.float32
KINDS = {TOKENS_DIR: (TOKEN_DTYPE, 1), NOTES_DIR: (NOTE_DTYPE, len(NOTE_FIELDS))}  # dtype, row


def read_manifest_json(folder: str | Path) -> dict[str, Any]:
    """The manifest as it is on disk, unchecked (listings read it to describe a dataset)."""
    return atomic.read_json_object(manifest_path(folder), "re-run prepare")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of the DATASET dir ``folder``, checked for format, version and note fields."""
    folder = Path(folder)
    path = manifest_path(folder)
    if not path.is_file():
        raise MidiforgeError(
            f"{folder} is not a prepared dataset (no {MANIFEST_FILE}); create it with "
            "`midiforge prepare SRC OUT`"
        )
    manifest = read_manifest_json(folder)
    found = (manifest.get("format"), manifest.get("format_version"))
    if found != (DATASET_FORMAT, DATASET_FORMAT_VERSION):
        raise MidiforgeError(
            f"{path}: format {found[0]!r} version {found[1]!r}, expected {DATASET_FORMAT!r} "
            f"version {DATASET_FORMAT_VERSION}; re-run prepare with this midiforge"
        )
    if tuple(manifest.get("note_fields", ())) != NOTE_FIELDS:
        raise MidiforgeError(
            f"{path}: note fields {manifest.get('note_fields')} differ from "
            f"{list(NOTE_FIELDS)}; re-run prepare with this midiforge"
        )
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``folder/manifest.json`` atomically (temp file + rename)."""
    return atomic.write_text(manifest_path(folder), json.dumps(manifest, indent=1))


class Sequences:
    """One split of one encoding: a flat memory-mapped array plus file offsets.

    ``seqs[i]`` is file ``i`` as a read-only numpy view (``[n]`` tokens or ``[n, F]`` notes).
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat = flat
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"file index {i} out of range for {len(self)} files")
        i %= len(self)
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """Elements per file, int64 ``[n_files]``."""
        return np.diff(self.offsets)


def map_arrays(path: Path, dtype: type, n_items: int, row: int) -> np.ndarray:
    """``path`` memory-mapped as ``[n_items]`` (row 1) or ``[n_items, row]``, size checked."""
    expected = n_items * row * np.dtype(dtype).itemsize
    actual = path.stat().st_size if path.is_file() else None
    if actual != expected:
        raise MidiforgeError(
            f"{path}: expected {expected} bytes for {n_items} items as the offsets say, found "
            f"{'no file' if actual is None else f'{actual} bytes'}; re-run prepare"
        )
    shape = (n_items, row) if row > 1 else (n_items,)
    if n_items == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def read_sequences(folder: Path, kind: str, split: str) -> Sequences:
    """The ``kind`` (``tokens``/``notes``) arrays of ``split``, memory-mapped."""
    path = offsets_path(folder, kind, split)
    if not path.is_file():
        raise MidiforgeError(f"{path} is missing; re-run prepare")
    offsets = np.load(path)
    dtype, row = KINDS[kind]
    flat = map_arrays(arrays_path(folder, kind, split), dtype, int(offsets[-1]), row)
    return Sequences(flat, offsets)


class PreparedDataset:
    """A DATASET dir, checked on open.

    Raises :class:`MidiforgeError` naming what does not match: a missing manifest, another
    format or version, other note fields, or arrays whose sizes disagree with their offsets.

    Attributes: ``manifest`` (dict), ``labels`` (label names; ``file_labels`` index into it),
    ``tokenizer`` (loaded once, on first use), ``pad_id``, ``vocab_size``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        self.labels: list[str] = list(self.manifest.get("labels", []))
        self._cache: dict[tuple[str, str], Sequences] = {}

    @cached_property
    def tokenizer(self):
        """The dataset's MidiTok tokenizer (``tokenizer.json``)."""
        return load_tokenizer(tokenizer_path(self.path))

    @cached_property
    def instruments(self) -> list[int]:
        """GM programs (-1 = drums) with notes in the train split, ascending.

        The manifest's ``instruments`` (program → train notes, written by ``prepare``); a
        dataset written before that key holds them in its train notes' ``program`` column
        (one merged piano stream is ``[0]``).
        """
        counts = self.manifest.get("instruments")
        if counts:
            return sorted(int(p) for p, n in counts.items() if int(n) > 0)
        fields = list(self.manifest.get("note_fields", []))
        if "program" not in fields or not self.split_files("train"):
            return [0]
        flat = np.asarray(self.notes("train").flat).reshape(-1, len(fields))
        return sorted(int(p) for p in np.unique(flat[:, fields.index("program")])) or [0]

    def _train_rows(self):
        """``(style label or None, note rows (n, fields))`` of each train file, in order."""
        if not self.split_files("train"):
            return
        width = len(self.manifest.get("note_fields", []))
        notes, labels = self.notes("train"), self.file_labels("train")
        for i, label in enumerate(labels.tolist()):
            name = self.labels[label] if 0 <= label < len(self.labels) else None
            yield name, np.asarray(notes[i]).reshape(-1, width)

    def style_instruments(self) -> dict[str, list[int]]:
        """Per style label, the GM programs (-1 = drums) its train files play, ascending.

        What ``generate --style S`` keeps a token run to when no ``--instruments`` is asked
        (a chorale on the chorales' strings, not on pop's piano); empty without labels or
        without a ``program`` note field.
        """
        fields = list(self.manifest.get("note_fields", []))
        if "program" not in fields or not self.labels:
            return {}
        column = fields.index("program")
        found: dict[str, set[int]] = {label: set() for label in self.labels}
        for label, rows in self._train_rows():
            if label is not None:
                found[label].update(int(p) for p in np.unique(rows[:, column]))
        return {label: sorted(programs) for label, programs in found.items() if programs}

    def style_keys(self) -> dict[str, dict[str, int]]:
        """How many train files are in each key (``"D major": 271``), per style label and over
        all train files (:data:`ALL_STYLES`), read by :func:`midiforge.chords.notes_key`.

        What ``generate`` moves an unkeyed piece toward (``sampling.style_key``): a model
        trained on transposed copies plays every key alike, its styles do not. Empty without
        ``pitch`` and ``duration`` note fields or train files.
        """
        from midiforge.chords import notes_key

        fields = list(self.manifest.get("note_fields", []))
        if not {"pitch", "duration"} <= set(fields):
            return {}
        pitch, duration = fields.index("pitch"), fields.index("duration")
        program = fields.index("program") if "program" in fields else None
        found: dict[str, dict[str, int]] = {ALL_STYLES: {}}
        for label, rows in self._train_rows():
            if program is not None:
                rows = rows[rows[:, program] >= 0]  # drums' pitches pick sounds, not a key
            if not len(rows):
                continue
            key = notes_key(rows[:, pitch], rows[:, duration])
            for style in (ALL_STYLES,) if label is None else (ALL_STYLES, label):
                counts = found.setdefault(style, {})
                counts[key] = counts.get(key, 0) + 1
        return {style: dict(sorted(c.items(), key=lambda kv: -kv[1])) for style, c in found.items()
                if c}  # fmt: skip

    def style_parts(self) -> dict[str, dict[str, Any]]:
        """Per style label (and over all train files, :data:`ALL_STYLES`), its band, its parts'
        registers and which parts play one line (:func:`midiforge.style_parts.fit_parts`):
        what a token run's samples are played as (``generate``; the diffusion model keeps
        its own copy). Empty without ``onset``, ``duration``, ``pitch`` and ``program`` note
        fields or train files."""
        from midiforge.style_parts import fit_style_parts

        fields = list(self.manifest.get("note_fields", []))
        if not {"onset", "duration", "pitch", "program"} <= set(fields):
            return {}
        rows = list(self._train_rows())
        if not rows:
            return {}
        styles, pieces = zip(*rows)
        return fit_style_parts(pieces, styles, ALL_STYLES, fields)

    def style_pickups(self) -> dict[str, list[list[float]]]:
        """Per style label (and over all train files, :data:`ALL_STYLES`), where in its bar
        each train file begins (:func:`midiforge.models.note_features.pickups`): where a note
        run's samples of the style begin (``generate``; the diffusion model keeps its own
        copy). Empty without an ``onset`` note field or train files."""
        from midiforge.models.note_features import pickups

        fields = list(self.manifest.get("note_fields", []))
        if "onset" not in fields:
            return {}
        onset = fields.index("onset")
        firsts: dict[str, list[float]] = {ALL_STYLES: []}
        for style, notes in self._train_rows():
            if len(notes):
                first = float(notes[:, onset].min())
                firsts[ALL_STYLES].append(first)
                if style is not None:
                    firsts.setdefault(style, []).append(first)
        return {style: pickups(np.array(f)) for style, f in firsts.items() if f}

    @property
    def special_ids(self) -> dict[str, int]:
        return dict(self.manifest["tokenizer"].get("special_ids", {}))

    @property
    def pad_id(self) -> int:
        return int(self.special_ids.get("PAD", 0))

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    def split_files(self, split: str) -> int:
        """How many files ``split`` holds, from the manifest (no array is opened)."""
        self._check_split(split)
        return int((self.manifest.get("splits", {}).get(split) or {}).get("files", 0) or 0)

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise choice_error("split", split, SPLITS)

    def _sequences(self, kind: str, split: str) -> Sequences:
        self._check_split(split)
        if (kind, split) not in self._cache:
            self._cache[(kind, split)] = read_sequences(self.path, kind, split)
        return self._cache[(kind, split)]

    def tokens(self, split: str) -> Sequences:
        """Token ids of a split: ``[i]`` → int32 ``[n_tokens]`` of file i."""
        return self._sequences(TOKENS_DIR, split)

    def notes(self, split: str) -> Sequences:
        """Note rows of a split: ``[i]`` → float32 ``[n_notes, len(NOTE_FIELDS)]`` of file i."""
        return self._sequences(NOTES_DIR, split)

    def file_labels(self, split: str) -> np.ndarray:
        """int64 ``[n_files]``: index into :attr:`labels`, -1 where a file has no label."""
        self._check_split(split)
        return np.load(labels_path(self.path, split))

    def files(self, split: str) -> list[dict[str, Any]]:
        """Manifest records of a split's files, in array order."""
        kept = [
            f for f in self.manifest["files"] if f.get("split") == split and f["status"] == "kept"
        ]
        return sorted(kept, key=lambda f: f["index"])
