"""Adherence figures on hand-written scores (exact values), and through ``evaluate --generated``
on real Nottingham tunes."""

from __future__ import annotations

import json
import shutil

import pytest
from symusic import Note, Score, TextMeta, TimeSignature, Track

from midiforge.cli import main
from midiforge.metrics.adherence import (
    folder_adherence,
    key_adherence,
    length_bars,
    pitched_notes,
    polyphony,
    range_adherence,
)

TPQ = 480


def _score(notes, *, drums=(), signatures=((0, 4, 4),), program=0) -> Score:
    score = Score(TPQ)
    for time, num, den in signatures:
        score.time_signatures.append(TimeSignature(time, num, den))
    track = Track(program=program)
    for start, length, pitch in notes:
        track.notes.append(Note(start, length, pitch, 80))
    score.tracks.append(track)
    kit = Track(is_drum=True)
    for start, pitch in drums:
        kit.notes.append(Note(start, TPQ, pitch, 80))
    score.tracks.append(kit)
    return score


def test_key_adherence_weighs_note_time_and_leaves_drums_out():
    # C (1 beat), D (1 beat), C# (2 beats): 2 of 4 beats on C major; a drum hit on 37 ignored
    score = _score([(0, TPQ, 60), (TPQ, TPQ, 62), (2 * TPQ, 2 * TPQ, 61)], drums=[(0, 37)])
    assert key_adherence(score, "C major") == 0.5
    assert key_adherence(score, "D major") == 0.75  # C# and D on it, C not
    assert len(pitched_notes(score)) == 3
    assert key_adherence(_score([]), "C major") is None


def test_range_share_counts_notes_per_program():
    score = _score([(0, TPQ, 47), (0, TPQ, 48), (TPQ, TPQ, 84), (TPQ, TPQ, 85)])
    assert range_adherence(score, "C3-C6") == 0.5
    assert range_adherence(score, "bass:C3-C6") == 1.0  # piano (0) is not a bass: no limit
    assert range_adherence(score, "piano:B2-C#6") == 1.0


def test_polyphony_counts_notes_sounding_together():
    # three notes overlap at beat 1; a note starting where another ends does not overlap it
    notes = [(0, 2 * TPQ, 60), (TPQ, TPQ, 64), (TPQ, 3 * TPQ, 67), (2 * TPQ, TPQ, 72)]
    assert polyphony(_score(notes)) == 3
    assert polyphony(_score([(0, TPQ, 60), (TPQ, TPQ, 62)])) == 1


def test_length_walks_time_signatures_and_reads_the_end_marker():
    # one bar of 3/4, then 2/4; the marker ends the file after two 2/4 bars
    score = _score([(0, TPQ, 60)], signatures=((0, 3, 4), (3 * TPQ, 2, 4)))
    score.markers.append(TextMeta(7 * TPQ, "end"))
    assert length_bars(score) == 3.0
    assert length_bars(_score([(0, 6 * TPQ, 60)])) == 1.5  # 4/4: a bar and a half


def test_evaluate_reports_adherence_of_written_files(datasets, tmp_path, capsys):
    generated, reference = tmp_path / "gen", tmp_path / "ref"
    generated.mkdir()
    reference.mkdir()
    tunes = sorted((datasets / "nottingham").glob("*.mid"))
    for path in tunes[:3]:
        shutil.copy(path, generated / path.name)
    for path in tunes[3:9]:
        shutil.copy(path, reference / path.name)
    found = folder_adherence(generated, key="G major", range="C4-C6", bars=4)
    assert len(found["per_file"]) == 3 and 0 < found["summary"]["mean_key_adherence"] <= 1
    assert found["summary"]["share_length_held"] == 0.0  # real tunes are longer than 4 bars
    out = tmp_path / "report"
    code = main(["evaluate", "--generated", str(generated), "--reference", str(reference),
                 "--out", str(out), "--key", "g major", "--range", "C4-C6", "--bars", "4",
                 "--max-polyphony", "2", "--chords", "G | D Em C"])  # fmt: skip
    assert code == 0 and "adherence: mean_key_adherence" in capsys.readouterr().out
    saved = json.loads((out / "report.json").read_text())["adherence"]
    assert saved["asked"] == {"key": "G major", "range": "C4-C6", "max_polyphony": 2, "bars": 4,
                              "chords": "G D Em C"}  # fmt: skip
    assert 0 < saved["summary"]["mean_chord_adherence"] < 1
    assert saved["summary"]["mean_key_adherence"] == pytest.approx(
        found["summary"]["mean_key_adherence"]
    )
    assert "## Adherence to the request" in (out / "report.md").read_text()
    code = main(["evaluate", "--generated", str(generated), "--reference", str(reference),
                 "--out", str(out), "--key", "G majr"])  # fmt: skip
    assert code == 2 and "is not a key; use a tonic" in capsys.readouterr().err
    code = main(["evaluate", "--generated", str(generated), "--reference", str(reference),
                 "--out", str(out), "--chords", "G Hm"])  # fmt: skip
    assert code == 2 and "chords: 'Hm' is not a chord symbol" in capsys.readouterr().err
