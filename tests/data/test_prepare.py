"""``prepare`` on real POP909 / Nottingham / robustness files: contents, splits, atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from midiforge.cli import main
from midiforge.data import corpus
from midiforge.data.encode import ids_to_score, notes_from_score
from midiforge.data.prepare import prepare
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.schema import FIELD
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.tokenizer_file import load_tokenizer

from ..conftest import interruptible
from .conftest import link_files, nottingham_files, pop909_files


def _cleaned(src: Path, rel: str, options: dict):
    score, _ = corpus.clean_score(
        load_midi(src / rel),
        programs=options["programs"],
        drums=options["drums"],
        tracks=options["tracks"],
        max_note_beats=options["max_note_beats"],
        max_gap_beats=options["max_gap_beats"],
    )
    return score


def test_manifest_and_arrays_agree(small_dataset: Path) -> None:
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    assert manifest["format"] == "midiforge-dataset" and manifest["format_version"] == 1
    assert set(manifest["versions"]) >= {"midiforge", "miditok", "symusic", "python"}
    assert len(manifest["files"]) == 24
    kept = [f for f in manifest["files"] if f["status"] == "kept"]
    assert manifest["summary"]["kept"] == len(kept) >= 20
    data = PreparedDataset(small_dataset)
    total = 0
    for split, counts in manifest["splits"].items():
        toks, notes = data.tokens(split), data.notes(split)
        assert len(toks) == len(notes) == counts["files"]
        assert toks.flat.shape == (counts["tokens"],)
        assert notes.flat.shape == (counts["notes"], 7)
        for rec in data.files(split):
            assert len(toks[rec["index"]]) == rec["tokens"]
            assert len(notes[rec["index"]]) == rec["notes"]
        total += counts["files"]
    assert total == len(kept)
    assert manifest["splits"]["train"]["files"] > manifest["splits"]["test"]["files"]


def test_labels_from_folder(small_dataset: Path) -> None:
    data = PreparedDataset(small_dataset)
    assert data.labels == ["folk", "pop"]
    for split in ("train", "valid", "test"):
        labels = data.file_labels(split)
        for rec in data.files(split):
            assert data.labels[labels[rec["index"]]] == rec["path"].split("/")[0]


def test_notes_match_cleaned_source(small_dataset: Path, small_corpus: Path) -> None:
    data = PreparedDataset(small_dataset)
    rec = data.files("train")[0]
    expected = notes_from_score(_cleaned(small_corpus, rec["path"], data.manifest["options"]))
    stored = data.notes("train")[rec["index"]]
    np.testing.assert_array_equal(stored, expected)
    onsets = stored[:, FIELD["onset"]]
    assert np.all(np.diff(onsets) >= 0)
    same = np.diff(onsets) == 0  # chord members after the first have delta 0
    assert np.all(stored[1:, FIELD["delta"]][same] == 0)


@pytest.mark.parametrize("folder", ["pop", "folk"])
def test_tokens_round_trip_on_grid(small_dataset: Path, small_corpus: Path, folder: str) -> None:
    data = PreparedDataset(small_dataset)
    tokenizer = load_tokenizer(small_dataset / "tokenizer.json")
    split = "train"
    rec = next(r for r in data.files(split) if r["path"].startswith(folder))
    ids = data.tokens(split)[rec["index"]]
    assert ids[0] == data.special_ids["BOS"] and ids[-1] == data.special_ids["EOS"]
    decoded = notes_from_score(ids_to_score(tokenizer, ids))
    source = notes_from_score(_cleaned(small_corpus, rec["path"], data.manifest["options"]))
    grid = max(tokenizer.config.beat_res.values())  # positions per beat
    low, high = tokenizer.config.pitch_range

    def events(notes: np.ndarray) -> set[tuple[int, int]]:
        keep = (notes[:, FIELD["pitch"]] >= low) & (notes[:, FIELD["pitch"]] < high)
        onset = np.floor(notes[keep, FIELD["onset"]] * grid + 0.5).astype(int)  # half up
        return set(zip(notes[keep, FIELD["pitch"]].astype(int).tolist(), onset.tolist()))

    assert events(decoded) == events(source)
    assert len(events(source)) > 100


def test_robustness_folder_goes_through(datasets: Path, tmp_path: Path) -> None:
    src = datasets / "robustness"
    result = prepare(src, tmp_path / "ds", jobs=2, quiet=True, tracks="all", drums=True)
    files = {f["path"]: f for f in result.manifest["files"]}
    assert len(files) == len(corpus.scan(src)) == 30
    assert files["MIDIs_one_track/empty.mid"]["reason"] == "empty"
    bad = files["MIDIs_corrupted/ValueError_Control168.mid"]
    assert bad["status"] == "skipped" and bad["reason"] == "unreadable"
    assert "ValueError_Control168.mid" in bad["detail"]
    assert result.skipped == {"empty": 1, "unreadable": 1}
    assert result.kept == 28
    assert PreparedDataset(tmp_path / "ds").tokenizer.one_token_stream  # Program tokens


def test_splits_stable_when_files_are_added(datasets: Path, tmp_path: Path) -> None:
    first = nottingham_files(datasets, 20)
    later = nottingham_files(datasets, 20, start=20)
    link_files(first, tmp_path / "a")
    small = prepare(tmp_path / "a", tmp_path / "small", jobs=1, quiet=True, min_tokens=0)
    link_files(first, tmp_path / "b")
    link_files(later, tmp_path / "b")
    big = prepare(tmp_path / "b", tmp_path / "big", jobs=1, quiet=True, min_tokens=0)
    before = {f["path"]: f["split"] for f in small.manifest["files"] if f["status"] == "kept"}
    after = {f["path"]: f["split"] for f in big.manifest["files"] if f["status"] == "kept"}
    assert before and all(after[p] == s for p, s in before.items())
    assert len(after) > len(before)


def test_split_by_file_and_duplicates(datasets: Path, tmp_path: Path) -> None:
    files = nottingham_files(datasets, 4)
    link_files(files, tmp_path / "src" / "x")
    link_files(files[:1], tmp_path / "src" / "y")  # same notes under another path
    table = tmp_path / "splits.tsv"
    table.write_text(
        "path\tsplit\n"
        + "".join(f"x/{f.name}\t{s}\n" for f, s in zip(files, ["test", "train", "valid", "train"]))
    )
    res = prepare(
        tmp_path / "src", tmp_path / "ds", split_by=str(table), jobs=1, quiet=True, min_tokens=0
    )
    recs = {f["path"]: f for f in res.manifest["files"]}
    assert recs[f"x/{files[0].name}"]["split"] == "test"
    assert recs[f"x/{files[2].name}"]["split"] == "valid"
    assert recs[f"y/{files[0].name}"]["reason"] == "duplicate"
    assert res.splits["train"]["files"] == 2
    assert {recs[f"x/{f.name}"]["split_source"] for f in files} == {"file"}
    res = prepare(tmp_path / "src", tmp_path / "ds2", jobs=1, quiet=True, min_tokens=0, dedup=False)
    assert res.kept == 5


def test_split_file_leaves_unlisted_files_to_the_hash_rule(datasets: Path, tmp_path: Path) -> None:
    # A mixed corpus: one file has a published split, the others are split by content hash,
    # exactly as they would be without a split file.
    files = nottingham_files(datasets, 5)
    link_files(files, tmp_path / "src")
    plain = prepare(tmp_path / "src", tmp_path / "plain", jobs=1, quiet=True, min_tokens=0)
    by_hash = {f["path"]: f["split"] for f in plain.manifest["files"]}
    listed = files[0].name
    forced = "valid" if by_hash[listed] != "valid" else "test"
    table = tmp_path / "splits.csv"
    table.write_text(f"path,split\n{listed},{forced}\n")
    mixed = prepare(
        tmp_path / "src", tmp_path / "mixed", split_by=str(table), jobs=1, quiet=True, min_tokens=0
    )
    recs = {f["path"]: f for f in mixed.manifest["files"]}
    assert recs[listed]["split"] == forced and recs[listed]["split_source"] == "file"
    for f in files[1:]:
        assert recs[f.name]["split"] == by_hash[f.name]
        assert recs[f.name]["split_source"] == "hash"


def test_too_short_and_tokenizer_choice(small_corpus: Path, tmp_path: Path) -> None:
    res = prepare(
        small_corpus / "folk", tmp_path / "ds", tokenizer="tsd", min_tokens=1200, jobs=1, quiet=True
    )
    short = [f for f in res.manifest["files"] if f["reason"] == "too short"]
    assert short and all(f["tokens"] < 1200 for f in short)
    assert res.manifest["tokenizer"]["name"] == "TSD"
    with pytest.raises(MidiforgeError, match="tracks"):
        prepare(small_corpus, tmp_path / "x", tracks="sideways")


def test_interrupted_run_leaves_nothing(datasets: Path, tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "src"
    link_files(pop909_files(datasets, 6), src)
    calls = {"n": 0}
    real = corpus.LabelSource.label

    def interrupt_after_three(self, rel):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, rel)

    monkeypatch.setattr(corpus.LabelSource, "label", interrupt_after_three)
    with pytest.raises(KeyboardInterrupt):
        prepare(src, tmp_path / "out", jobs=2, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_ctrl_c_in_a_subprocess_leaves_nothing(datasets: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    link_files(pop909_files(datasets, 400), src)  # ~1.5 s of work: still running at the signal
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "midiforge",
            "prepare",
            str(src),
            str(tmp_path / "out"),
            "--jobs",
            "1",
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 30
    while not any(p.name.startswith(".out.tmp") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "never started writing"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing", "{tmp}/out"], "SRC: folder not found"),
        (["{tmp}/empty", "{tmp}/out"], "no .mid/.midi files"),
        (["{tmp}/empty", "{tmp}/out", "--tokenizer", "nope"], "tokenizer: 'nope'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not music")
    argv = [a.format(tmp=tmp_path) for a in args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "midiforge", "prepare", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_bpe_trains_on_train_split_and_decodes(small_corpus: Path, tmp_path: Path) -> None:
    res = prepare(
        small_corpus / "folk", tmp_path / "ds", bpe_vocab=500, jobs=1, quiet=True, min_tokens=0
    )
    data = PreparedDataset(tmp_path / "ds")
    assert data.tokenizer.is_trained and data.vocab_size == 500 == len(data.tokenizer)
    rec = data.files("train")[0]
    ids = data.tokens("train")[rec["index"]]
    assert rec["tokens"] == len(ids) < rec["tokens_base"]
    assert ids.max() >= 400  # merged tokens are used
    decoded = notes_from_score(ids_to_score(data.tokenizer, ids))
    stored = data.notes("train")[rec["index"]]
    np.testing.assert_array_equal(decoded[:, FIELD["pitch"]], stored[:, FIELD["pitch"]])
    assert res.manifest["tokenizer"]["bpe"] is True
    with pytest.raises(MidiforgeError, match="bpe_vocab: 100 is not above"):
        prepare(small_corpus / "folk", tmp_path / "ds2", bpe_vocab=100)


def test_labels_from_csv(datasets: Path, tmp_path: Path) -> None:
    files = nottingham_files(datasets, 3)
    link_files(files, tmp_path / "src")
    table = tmp_path / "labels.csv"
    table.write_text(f"{files[0].name},jig\n{files[1].name},reel\n")
    res = prepare(
        tmp_path / "src",
        tmp_path / "ds",
        labels_from=str(table),
        jobs=1,
        quiet=True,
        min_tokens=0,
        split=(1.0, 0.0, 0.0),
    )
    data = PreparedDataset(tmp_path / "ds")
    assert data.labels == ["jig", "reel"] == res.manifest["labels"]
    by_path = {r["path"]: data.file_labels("train")[r["index"]] for r in data.files("train")}
    assert by_path == {files[0].name: 0, files[1].name: 1, files[2].name: -1}


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_overwrite_never_deletes_src(datasets: Path, tmp_path: Path, capsys) -> None:
    # `prepare SRC SRC/.. --overwrite` once replaced the parent, SRC with it, and exited 0
    parent = tmp_path / "music"
    src = parent / "songs"
    link_files(nottingham_files(datasets, 6), src)
    (parent / "notes.txt").write_text("mine")
    before = _files_under(parent)
    assert len(before) == 8
    for out, message in ((parent, "contains SRC"), (src, "is SRC itself")):
        with pytest.raises(MidiforgeError, match=message):
            prepare(src, out, overwrite=True, jobs=1, quiet=True)
    assert main(["prepare", str(src), str(src / ".."), "--overwrite", "--quiet"]) == 2
    assert "contains SRC" in capsys.readouterr().err
    assert _files_under(parent) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music"]


def test_overwrite_replaces_only_a_dataset(datasets: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    link_files(nottingham_files(datasets, 6), src)
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    (other / "sub" / "thesis.tex").write_text("years of work")
    (other / "manifest.json").write_text(json.dumps({"format": "someone-elses"}))
    before = _files_under(other)
    with pytest.raises(MidiforgeError, match="is not a midiforge dataset") as caught:
        prepare(src, other, overwrite=True, jobs=1, quiet=True)
    assert str(other) in str(caught.value)
    assert _files_under(other) == before
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(MidiforgeError, match="is a file, not a folder"):
        prepare(src, tmp_path / "a_file", overwrite=True, jobs=1, quiet=True)
    # a real dataset is replaced, atomically, with nothing left beside it
    first = prepare(src, tmp_path / "ds", jobs=1, quiet=True)
    link_files(nottingham_files(datasets, 2, start=6), src)
    with pytest.raises(MidiforgeError, match="exists and is not empty"):
        prepare(src, tmp_path / "ds", jobs=1, quiet=True)
    again = prepare(src, tmp_path / "ds", overwrite=True, jobs=1, quiet=True)
    assert len(again.manifest["files"]) == len(first.manifest["files"]) + 2 == 8
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert len(manifest["files"]) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "ds", "other", "src"]
    (tmp_path / "link").symlink_to(tmp_path / "ds")
    with pytest.raises(MidiforgeError, match="symbolic link"):
        prepare(src, tmp_path / "link", overwrite=True, jobs=1, quiet=True)
    assert (tmp_path / "link" / "manifest.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare(src, empty, jobs=1, quiet=True).kept == again.kept  # nothing to lose
