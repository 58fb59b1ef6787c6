"""The one dataset writer and the reader: a round trip on real tunes, atomic commits, checks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from midiforge.errors import MidiforgeError
from midiforge.schema import NO_LABEL, NOTE_FIELDS
from midiforge.store import names
from midiforge.store.dataset_dir import PreparedDataset, read_manifest
from midiforge.store.dataset_writer import DatasetWriter, pack_file


def write(out: Path, tunes: dict, extra: dict | None = None, *, packed: bool = False) -> dict:
    """Write ``tunes`` with the writer (``packed``: as ``prepare`` does); → the manifest."""
    with DatasetWriter(out) as writer:
        files = []
        for piece in tunes["pieces"]:
            split, ids, notes, label = (piece[k] for k in ("split", "ids", "notes", "label"))
            if packed:
                index = writer.add_packed(split, pack_file(ids, notes), label)
                (writer.scratch() / f"chunk-{index}.bin").write_bytes(b"handed over")
            else:
                index = writer.add(split, ids, notes, label)
            files.append({"split": split, "index": index, "status": "kept"})
        writer.save_tokenizer(tunes["tokenizer"])
        labels = sorted({p["label"] for p in tunes["pieces"] if p["label"]})
        return writer.commit({"options": {"test": True}, "tokenizer": {"name": "REMI",
                              "vocab_size": len(tunes["tokenizer"])}, "labels": labels,
                              "files": files, **(extra or {})})  # fmt: skip


def test_what_the_writer_writes_the_reader_reads(encoded_tunes, tmp_path):
    manifest = write(tmp_path / "ds", encoded_tunes)
    data = PreparedDataset(tmp_path / "ds")
    assert data.manifest == manifest == read_manifest(tmp_path / "ds")
    assert manifest["format"] == names.DATASET_FORMAT and manifest["note_fields"] == list(
        NOTE_FIELDS
    )
    assert set(manifest["versions"]) >= {"python", "midiforge", "miditok", "symusic", "torch"}
    assert data.labels == ["jig", "reel"]
    for split in names.SPLITS:
        pieces = [p for p in encoded_tunes["pieces"] if p["split"] == split]
        tokens, notes = data.tokens(split), data.notes(split)
        assert len(tokens) == len(notes) == data.split_files(split) == len(pieces)
        assert manifest["splits"][split] == {
            "files": len(pieces),
            "tokens": sum(len(p["ids"]) for p in pieces),
            "notes": sum(len(p["notes"]) for p in pieces),
        }
        for i, piece in enumerate(pieces):
            np.testing.assert_array_equal(tokens[i], piece["ids"])
            np.testing.assert_array_equal(notes[i], piece["notes"])
            assert tokens[i].dtype == np.int32 and notes[i].dtype == np.float32
        expected = [data.labels.index(p["label"]) if p["label"] else NO_LABEL for p in pieces]
        assert data.file_labels(split).tolist() == expected
    assert data.files("train") == [f for f in manifest["files"] if f["split"] == "train"]
    assert data.tokenizer.vocab == encoded_tunes["tokenizer"].vocab  # tokenizer.json round trip
    assert not list(tmp_path.glob(".ds*"))  # no temporary folder left beside OUT


def test_an_empty_split_reads_as_no_files(encoded_tunes, tmp_path):
    train_only = {**encoded_tunes, "pieces": encoded_tunes["pieces"][:2]}
    write(tmp_path / "ds", train_only)
    data = PreparedDataset(tmp_path / "ds")
    assert len(data.tokens("test")) == 0 and data.notes("valid").flat.shape == (0, len(NOTE_FIELDS))
    assert data.file_labels("test").tolist() == []


def test_a_failed_write_leaves_the_previous_dataset(encoded_tunes, tmp_path):
    out = tmp_path / "ds"
    write(out, encoded_tunes)
    before = (out / names.MANIFEST_FILE).read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"), DatasetWriter(out) as writer:
        writer.add("train", np.arange(10), np.zeros((0, len(NOTE_FIELDS))), None)
        raise RuntimeError("interrupted")
    assert (out / names.MANIFEST_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # temp folder removed
    write(out, {**encoded_tunes, "pieces": encoded_tunes["pieces"][:1]})  # commit replaces whole
    assert PreparedDataset(out).split_files("train") == 1


def test_stale_temp_folders_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / ".ds.tmp-999999999"  # no such process
    live = tmp_path / f".ds.tmp-{os.getpid()}x"  # not a pid suffix: left alone
    dead.mkdir()
    live.mkdir()
    DatasetWriter(tmp_path / "ds").abort()
    assert not dead.exists() and live.exists()


def test_rows_of_another_width_and_unknown_splits_are_refused(tmp_path):
    with DatasetWriter(tmp_path / "ds") as writer:
        with pytest.raises(MidiforgeError, match=r"note rows of shape \[4, 3\]"):
            writer.add("train", np.arange(3), np.zeros((4, 3)), None)
        with pytest.raises(MidiforgeError, match="split: 'dev'"):
            writer.add("dev", np.arange(3), np.zeros((0, len(NOTE_FIELDS))), None)
    assert list(tmp_path.iterdir()) == []  # left without a commit: nothing written


def test_packed_files_are_written_as_added_ones(encoded_tunes, tmp_path):
    # prepare's workers pack (pack_file), its main process only appends bytes (add_packed)
    for piece in encoded_tunes["pieces"]:
        packed = pack_file(piece["ids"], piece["notes"])
        assert len(packed.data) == packed.size == 4 * len(piece["ids"]) + 28 * len(piece["notes"])
    write(tmp_path / "added", encoded_tunes)
    write(tmp_path / "packed", encoded_tunes, packed=True)
    added, packed = (
        {p.relative_to(tmp_path / d): p.read_bytes() for p in (tmp_path / d).rglob("*.*")}
        for d in ("added", "packed")
    )
    assert added == packed  # every file, byte for byte; the scratch folder went at commit
    assert PreparedDataset(tmp_path / "packed").manifest["instruments"] != {}


def test_replaced_tokens_are_what_is_read(encoded_tunes, tmp_path):
    with DatasetWriter(tmp_path / "ds") as writer:
        for piece in encoded_tunes["pieces"][:3]:
            writer.add("train", piece["ids"], piece["notes"], None)
        base = writer.splits["train"].base_tokens()
        writer.splits["train"].replace_tokens(base[i][::2] for i in range(len(base)))
        writer.commit({"tokenizer": {"vocab_size": 1}, "labels": [], "files": []})
    tokens = PreparedDataset(tmp_path / "ds").tokens("train")
    for i, piece in enumerate(encoded_tunes["pieces"][:3]):
        np.testing.assert_array_equal(tokens[i], piece["ids"][::2])


def test_open_rejects_what_does_not_match(encoded_tunes, tmp_path):
    with pytest.raises(MidiforgeError, match=r"no manifest\.json"):
        PreparedDataset(tmp_path)
    copy = tmp_path / "ds"
    write(copy, encoded_tunes)
    manifest = json.loads((copy / names.MANIFEST_FILE).read_text())
    (copy / names.MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(MidiforgeError, match="version 99"):
        PreparedDataset(copy)
    (copy / names.MANIFEST_FILE).write_text(json.dumps({**manifest, "note_fields": ["pitch"]}))
    with pytest.raises(MidiforgeError, match="note fields"):
        PreparedDataset(copy)
    (copy / names.MANIFEST_FILE).write_text("{not json")
    with pytest.raises(MidiforgeError, match="cannot read it"):
        PreparedDataset(copy)
    (copy / names.MANIFEST_FILE).write_text(json.dumps(manifest))
    with (copy / "tokens" / "train.bin").open("ab") as fh:
        fh.write(b"\0\0\0\0")
    with pytest.raises(MidiforgeError, match=r"train\.bin: expected"):
        PreparedDataset(copy).tokens("train")
    with pytest.raises(MidiforgeError, match="split: 'dev'"):
        PreparedDataset(copy).notes("dev")
    shutil.rmtree(copy / "notes")
    with pytest.raises(MidiforgeError, match=r"valid\.offsets\.npy is missing"):
        PreparedDataset(copy).notes("valid")


def test_style_keys_count_each_train_file_once_per_style_and_once_in_all(
    encoded_tunes, datasets, tmp_path
):
    from midiforge.io.midi import load_midi
    from midiforge.sampling.style_key import piece_key
    from midiforge.schema import ALL_STYLES

    write(tmp_path / "ds", encoded_tunes)
    keys = PreparedDataset(tmp_path / "ds").style_keys()
    files = sorted((datasets / "nottingham").glob("*.mid"))
    train = [(f, p["label"]) for f, p in zip(files, encoded_tunes["pieces"])
             if p["split"] == "train"]  # fmt: skip
    # each stored file's rows read as its MIDI file's notes do (symusic, ticks not beats)
    expected: dict[str, dict[str, int]] = {}
    for path, label in train:
        key = piece_key(load_midi(path))
        for style in [ALL_STYLES] + ([label] if label else []):
            expected.setdefault(style, {}).setdefault(key, 0)
            expected[style][key] += 1
    assert keys == expected
    assert sum(keys[ALL_STYLES].values()) == 3 and set(keys) == {ALL_STYLES, "jig", "reel"}
