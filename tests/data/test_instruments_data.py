"""Instruments through the data layer: real band MIDI with drums in, the same instruments out."""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import symusic

from midiforge.cli.prepare import add_arguments
from midiforge.data.corpora import PART_PROGRAMS, build_corpus
from midiforge.data.encode import ids_to_score, notes_from_score, score_from_notes
from midiforge.data.prepare import prepare
from midiforge.instruments import DRUMS, family_program, instrument_name
from midiforge.schema import FIELD
from midiforge.store.dataset_dir import PreparedDataset

BAND_SONG = "Funkytown.mid"  # drums, bass, guitars, keys, strings, brass


def _band(datasets: Path, folder: Path, names: tuple[str, ...] = (BAND_SONG,)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(datasets / "robustness" / "MIDIs_multitrack" / name, folder / name)
    return folder


def _prepare_band(datasets: Path, tmp_path: Path, **options) -> PreparedDataset:
    src = _band(datasets, tmp_path / "src")
    prepare(src, tmp_path / "ds", jobs=1, quiet=True, split=(1.0, 0.0, 0.0), **options)
    return PreparedDataset(tmp_path / "ds")


def _instruments(score: symusic.Score) -> Counter[tuple[int, bool]]:
    counts: Counter[tuple[int, bool]] = Counter()
    for track in score.tracks:
        counts[(DRUMS if track.is_drum else track.program, track.is_drum)] += len(track.notes)
    return counts


def test_band_song_round_trips_with_programs_and_drums(datasets: Path, tmp_path: Path) -> None:
    data = _prepare_band(datasets, tmp_path)
    source = _instruments(symusic.Score(str(datasets / "robustness/MIDIs_multitrack" / BAND_SONG)))
    assert data.manifest["tokenizer"]["programs"] and data.tokenizer.one_token_stream
    notes = data.notes("train")[0]
    stored = Counter(notes[:, FIELD["program"]].astype(int).tolist())
    decoded = ids_to_score(data.tokenizer, data.tokens("train")[0])
    back = _instruments(decoded)
    # every source instrument survives as (program, drum flag), drums on the drum channel
    assert set(back) == {k for k, n in source.items() if n} and (DRUMS, True) in back
    # and each keeps its notes: the stored rows (the cleaned file) vs the decoded tokens
    assert {p: n for (p, _), n in back.items()} == dict(stored)
    assert [t.name for t in decoded.tracks] == [
        instrument_name(DRUMS if t.is_drum else t.program) for t in decoded.tracks
    ]
    # the decoded MIDI keeps the drum flag through a file (channel 10)
    decoded.dump_midi(str(tmp_path / "back.mid"))
    assert _instruments(symusic.Score(str(tmp_path / "back.mid"))) == back
    # the source's track names stay in the manifest, which is where the format has room
    original = symusic.Score(str(datasets / "robustness/MIDIs_multitrack" / BAND_SONG))
    named = [[DRUMS if t.is_drum else t.program, t.name] for t in original.tracks if t.notes]
    assert data.files("train")[0]["track_names"] == named and any(n for _, n in named)


def test_manifest_instruments_count_the_train_notes(datasets: Path, tmp_path: Path) -> None:
    src = _band(datasets, tmp_path / "src", ("Funkytown.mid", "Mr. Blue Sky.mid", "Aicha.mid"))
    splits = tmp_path / "splits.csv"  # two songs to train, one elsewhere: only train counts
    splits.write_text("Funkytown.mid,train\nMr. Blue Sky.mid,train\nAicha.mid,valid\n")
    prepare(src, tmp_path / "ds", jobs=1, quiet=True, split_by=str(splits))
    data = PreparedDataset(tmp_path / "ds")
    counted: Counter[int] = Counter()
    for notes in data.notes("train"):
        counted.update(notes[:, FIELD["program"]].astype(int).tolist())
    assert data.manifest["instruments"] == {str(p): n for p, n in sorted(counted.items())}
    assert data.instruments == sorted(counted) and DRUMS in data.instruments
    assert sum(counted.values()) == data.manifest["splits"]["train"]["notes"]
    assert data.manifest["splits"]["valid"]["notes"] > 0 and len(data.notes("train")) == 2


def test_instrument_families_group_programs_and_shrink_the_vocabulary(
    datasets: Path, tmp_path: Path
) -> None:
    kept = _prepare_band(datasets, tmp_path / "a")
    grouped = _prepare_band(datasets, tmp_path / "b", instrument_groups="families")
    programs = set(grouped.instruments)
    assert programs == {family_program(p) for p in kept.instruments}
    assert len(programs) < len(kept.instruments) and DRUMS in programs
    stored = set(grouped.notes("train")[0][:, FIELD["program"]].astype(int).tolist())
    assert stored == programs  # the note rows carry the grouped program too
    program_tokens = [t for t in grouped.tokenizer.vocab if t.startswith("Program_")]
    assert len(program_tokens) == 17  # 16 families + drums
    assert grouped.vocab_size < kept.vocab_size
    decoded = _instruments(ids_to_score(grouped.tokenizer, grouped.tokens("train")[0]))
    assert {p for p, _ in decoded} == programs


def test_merge_is_one_piano_stream_without_drums(datasets: Path, tmp_path: Path) -> None:
    data = _prepare_band(datasets, tmp_path, tracks="merge")
    assert data.instruments == [0] and not data.manifest["tokenizer"]["programs"]
    decoded = ids_to_score(data.tokenizer, data.tokens("train")[0])
    assert [(t.name, t.program, t.is_drum) for t in decoded.tracks] == [
        ("Acoustic Grand Piano", 0, False)
    ]
    none = _prepare_band(datasets, tmp_path / "nodrums", drums=False)
    assert DRUMS not in none.instruments and len(none.instruments) > 1


def test_cli_keeps_drums_by_default_and_no_drums_drops_them() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = parser.parse_args(["in", "out"])
    assert (default.tracks, default.drums, default.instrument_groups) == ("all", True, "programs")
    assert parser.parse_args(["in", "out", "--drums"]).drums is True
    assert parser.parse_args(["in", "out", "--no-drums"]).drums is False
    families = parser.parse_args(["in", "out", "--instrument-groups", "families"])
    assert families.instrument_groups == "families"
    with pytest.raises(SystemExit):
        parser.parse_args(["in", "out", "--instrument-groups", "bands"])


def test_score_from_notes_writes_named_gm_tracks_and_a_drum_channel(tmp_path: Path) -> None:
    notes = np.zeros((3, len(FIELD)), np.float32)
    notes[:, FIELD["pitch"]] = [36, 40, 60]
    notes[:, FIELD["onset"]] = [0, 1, 0]
    notes[:, FIELD["duration"]] = 0.5
    notes[:, FIELD["velocity"]] = 90
    notes[:, FIELD["program"]] = [DRUMS, 33, 0]
    score = score_from_notes(notes)
    assert [(t.name, t.program, t.is_drum) for t in score.tracks] == [
        ("Drums", 0, True),
        ("Acoustic Grand Piano", 0, False),
        ("Electric Bass (finger)", 33, False),
    ]
    score.dump_midi(str(tmp_path / "x.mid"))
    again = notes_from_score(symusic.Score(str(tmp_path / "x.mid")))
    assert sorted(again[:, FIELD["program"]].tolist()) == [DRUMS, 0, 33]


def _mini_datasets(datasets: Path, root: Path) -> Path:
    """A datasets folder with two POP909 songs and three Nottingham tunes (one melody-only)."""
    for song in ("001", "002"):
        (root / "pop909" / song).mkdir(parents=True)
        (root / "pop909" / song / f"{song}.mid").symlink_to(
            datasets / "pop909" / song / f"{song}.mid"
        )
    (root / "nottingham").mkdir()
    tunes = sorted((datasets / "nottingham").glob("*.mid"))
    one_track = next(t for t in tunes if len(symusic.Score(str(t)).tracks) == 1)
    for tune in [*tunes[:2], one_track]:
        (root / "nottingham" / tune.name).symlink_to(tune)
    return root


def test_shipped_corpora_give_each_part_its_program(datasets: Path, tmp_path: Path) -> None:
    mini = _mini_datasets(datasets, tmp_path / "datasets")
    build_corpus(mini, tmp_path / "out", names=("pop909", "nottingham"))
    pop = symusic.Score(str(tmp_path / "out" / "pop" / "001.mid"))
    assert {t.name: t.program for t in pop.tracks} == {"MELODY": 73, "BRIDGE": 48, "PIANO": 0}
    assert not (tmp_path / "out" / "pop" / "001.mid").is_symlink()
    folk = sorted((tmp_path / "out" / "folk").iterdir())
    programs = [[(t.name, t.program) for t in symusic.Score(str(f)).tracks] for f in folk]
    assert sorted(programs, key=len) == [
        [("melody", 40)],
        [("melody", 40), ("chords", 24)],
        [("melody", 40), ("chords", 24)],
    ]
    # the chorales are four string parts, converted from the real JSON
    build_corpus(datasets, tmp_path / "jsb", names=("jsb",))
    chorale = symusic.Score(str(tmp_path / "jsb" / "chorale" / "test_000.mid"))
    assert [t.program for t in chorale.tracks] == [40, 41, 42, 43]
    assert PART_PROGRAMS["jsb"] == {"soprano": 40, "alto": 41, "tenor": 42, "bass": 43}
