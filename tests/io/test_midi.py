"""MIDI load/save: clear errors naming the file, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from symusic import Note, Score, Track

from midiforge.errors import MidiforgeError
from midiforge.io.midi import is_midi_path, load_midi, save_midi


def test_load_errors_name_the_file(datasets: Path, tmp_path: Path) -> None:
    bad = datasets / "robustness" / "MIDIs_corrupted" / "ValueError_Control168.mid"
    with pytest.raises(MidiforgeError, match=r"ValueError_Control168\.mid"):
        load_midi(bad)
    with pytest.raises(MidiforgeError, match="not found"):
        load_midi(tmp_path / "missing.mid")
    junk = tmp_path / "junk.MID"
    junk.write_bytes(b"RIFF not a midi file")
    with pytest.raises(MidiforgeError, match=r"junk\.MID"):
        load_midi(junk)


def test_save_round_trip_and_no_temp_left(datasets: Path, tmp_path: Path) -> None:
    score = load_midi(datasets / "pop909" / "001" / "001.mid")
    out = save_midi(score, tmp_path / "sub" / "copy.mid")
    again = load_midi(out)
    assert again.note_num() == score.note_num() > 1000
    assert [p.name for p in out.parent.iterdir()] == ["copy.mid"]


def test_save_failure_leaves_no_file(tmp_path: Path) -> None:
    score = Score(480)
    track = Track()
    track.notes.append(Note(0, 480, 60, 90))
    score.tracks.append(track)
    target = tmp_path / "dir.mid"
    target.mkdir()  # a folder where the file should go: the rename must fail
    with pytest.raises(OSError):
        save_midi(score, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.mid"]


def test_suffixes_any_case() -> None:
    assert is_midi_path("a/B.MID") and is_midi_path("x.Midi") and not is_midi_path("x.mid.txt")
