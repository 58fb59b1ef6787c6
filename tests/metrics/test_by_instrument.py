"""Metrics per instrument class: GM families and drums, on band songs and hand-made files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import symusic

from midiforge.cli import main
from midiforge.instruments import family_of
from midiforge.metrics import by_instrument, drums, music, overlap, pitch
from midiforge.metrics.evaluate import compare_features, evaluate

MULTITRACK = ("robustness", "MIDIs_multitrack")
TPQ = 480


def _write(path: Path, parts: dict[int, list[tuple[int, float, float]]]) -> Path:
    """A MIDI file with one track per program (-1: drums) of (pitch, onset, duration) in beats."""
    score = symusic.Score(TPQ)
    for program, rows in parts.items():
        track = symusic.Track(f"p{program}", max(program, 0), program == -1)
        for p, onset, dur in rows:
            track.notes.append(symusic.Note(round(onset * TPQ), round(dur * TPQ), p, 90))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_a_band_song_splits_into_its_families(datasets: Path) -> None:
    score = symusic.Score(str(datasets.joinpath(*MULTITRACK, "Mr. Blue Sky.mid")))
    parts = by_instrument.class_pieces(music.piece_from_score(score))
    tracks = [t for t in score.tracks if len(t.notes)]
    families = {"Drums" if t.is_drum else family_of(t.program) for t in tracks}
    assert set(parts) == families
    assert list(parts) == [c for c in by_instrument.CLASS_ORDER if c in families]
    for name, part in parts.items():
        expected = sum(
            len(t.notes) for t in tracks if ("Drums" if t.is_drum else family_of(t.program)) == name
        )
        assert len(part.notes) == expected, name
    np.testing.assert_array_equal(parts["Drums"].notes, parts["Drums"].drums)
    assert all(len(p.drums) == 0 for n, p in parts.items() if n != "Drums")


def test_class_metrics_by_hand(tmp_path: Path) -> None:
    # a piano C major scale, a bass walking two octaves down, and a kick on the beats with a
    # hi-hat a third of a beat later (both on the triplet grid: consistency 1)
    piano = [(60 + s, i, 1) for i, s in enumerate((0, 2, 4, 5, 7, 9, 11, 12))]
    bass = [(36, 0, 2), (43, 2, 2), (48, 4, 2), (38, 6, 2)]
    kit = [(36, b, 0.25) for b in range(8)] + [(42, b + 1 / 3, 0.25) for b in range(8)]
    path = _write(tmp_path / "band.mid", {0: piano, 33: bass, -1: kit})
    parts = by_instrument.class_pieces(music.piece_from_score(symusic.Score(str(path))))
    assert list(parts) == ["Piano", "Bass", "Drums"]
    bass_feats = by_instrument.class_features([parts["Bass"]], "Bass")
    assert bass_feats["pitch_range"][0] == 12 and bass_feats["n_pitches_used"][0] == 4
    assert bass_feats["polyphony"][0] == 1.0
    piano_feats = by_instrument.class_features([parts["Piano"]], "Piano")
    assert piano_feats["pitch_range"][0] == 12 and piano_feats["scale_consistency"][0] == 1.0
    drum_feats = by_instrument.class_features([parts["Drums"]], "Drums")
    assert set(drum_feats) == set(by_instrument.DRUM_CLASS_METRICS)
    assert "pitch_range" not in drum_feats and "polyphony" not in drum_feats
    assert drum_feats["drum_pattern_consistency"][0] == pytest.approx(1.0)
    assert drums.drum_in_pattern_rate(parts["Drums"].drums, "duple") == pytest.approx(0.5)
    assert drum_feats["note_density"][0] == pytest.approx(16 / (7 + 1 / 3 + 0.25))
    # 16 onsets from 0 to 7 + 1/3: the mean gap is that span over 15 gaps
    assert drum_feats["mean_ioi"][0] == pytest.approx((7 + 1 / 3) / 15, abs=1e-3)
    # the whole piece mixes piano and bass: its range is the two together
    whole = music.piece_from_score(symusic.Score(str(path)))
    assert pitch.pitch_range(whole.notes) == 72 - 36


def test_dataset_rows_keep_their_programs() -> None:
    fields = ["pitch", "frequency", "onset", "duration", "delta", "velocity", "program"]
    rows = np.array(
        [[67, 392, 2, 0.5, 2, 80, 33], [36, 65, 0, 0.25, 0, 90, -1], [60, 262, 0, 1, 0, 80, 0]]
    )
    piece = music.piece_from_fields(rows, fields)
    np.testing.assert_array_equal(piece.programs, [0, 33])  # sorted with the notes
    assert list(by_instrument.class_pieces(piece)) == ["Piano", "Bass", "Drums"]
    bare = music.piece_from_fields(rows[:, [0, 2, 3]], ["pitch", "onset", "duration"])
    assert list(by_instrument.class_pieces(bare)) == ["Piano"]  # no programs: MIDI's piano
    assert list(by_instrument.class_pieces(music.Piece(piece.notes))) == ["Piano"]


def test_evaluate_reports_classes_one_side_has(tmp_path: Path) -> None:
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    scale = [(60 + s, i, 1) for i, s in enumerate((0, 2, 4, 5, 7, 9, 11, 12))]
    kit = [(36, b, 0.25) for b in range(8)] + [(42, b + 0.5, 0.25) for b in range(8)]
    _write(gen / "band.mid", {0: scale, 56: [(72, 0, 4)], -1: kit})  # piano, trumpet, drums
    for i in range(4):  # piano and bass, no drums
        walk = [(36 + i, 0, 2), (43 + i, 2, 2), (48, 4, 2)]
        _write(ref / f"ref{i}.mid", {0: [(p + i, o, d) for p, o, d in scale], 33: walk})
    out = tmp_path / "report"
    args = ["evaluate", "--generated", str(gen), "--reference", str(ref), "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    classes = report["per_instrument"]
    assert list(classes) == ["Piano", "Bass", "Brass", "Drums"]
    assert {n: c["status"] for n, c in classes.items()} == {
        "Piano": "both", "Bass": "reference only", "Brass": "generated only",
        "Drums": "generated only",
    }  # fmt: skip
    assert (classes["Piano"]["n_generated"], classes["Piano"]["n_reference"]) == (1, 4)
    piano = classes["Piano"]["metrics"]["pitch_range"]
    assert piano["generated"]["mean"] == 12 and piano["reference"]["mean"] == 12
    assert piano["oa"] is None  # every range is 12: minmax's interval is empty (NaN)
    assert 0 < classes["Piano"]["metrics"]["pitch_class_histogram"]["oa"] <= 1  # transposed
    assert classes["Bass"]["metrics"]["pitch_range"]["reference"]["mean"] == 10.5  # 12 - i
    assert classes["Bass"]["metrics"]["pitch_range"]["generated"]["n"] == 0
    drum = classes["Drums"]["metrics"]
    assert set(drum) == set(by_instrument.DRUM_CLASS_METRICS)
    assert drum["drum_pattern_consistency"]["generated"]["mean"] == 1.0  # 8ths: duple grid
    assert drum["drum_pattern_consistency"]["reference"]["n"] == 0
    assert drum["drum_pattern_consistency"]["oa"] is None  # nothing to overlap with (NaN)
    # the whole-piece figures stay beside them: piano and bass together
    assert report["aggregate"]["pitch_range"]["reference"]["mean"] > 12
    md = (out / "report.md").read_text()
    section = md.split("## Per instrument class")[1].split("## Framewise")[0]
    assert "| Bass | 0 | 4 | reference only |" in section
    assert "### Drums (generated only)" in section and "### Piano\n" in section
    drums_table = section.split("### Drums")[1]
    assert "| drum_pattern_consistency | 1.000 |" in drums_table
    assert "pitch_range" not in drums_table
    assert "ceiling (reference halves)" in section


def test_class_ceilings_are_the_reference_halves(datasets: Path, tmp_path: Path) -> None:
    source = datasets.joinpath(*MULTITRACK)
    ref = tmp_path / "ref"
    ref.mkdir()
    names = ["Aicha.mid", "Funkytown.mid", "Mr. Blue Sky.mid", "Shut Up.mid",
             "What a Fool Believes.mid", "In Too Deep.mid"]  # fmt: skip
    for name in names:
        shutil.copy(source / name, ref / name)
    gen = tmp_path / "gen"
    gen.mkdir()
    shutil.copy(source / "Girls Just Want to Have Fun.mid", gen / "girls.mid")
    report = evaluate(generated=gen, reference=ref, out=tmp_path / "report")
    drums_entry = report["per_instrument"]["Drums"]
    assert drums_entry["status"] == "both" and drums_entry["n_reference"] == len(names)
    # recomputed independently: the drum parts of the reference files in name order, halved
    parts = [
        by_instrument.class_pieces(music.piece_from_score(symusic.Score(str(ref / n))))["Drums"]
        for n in sorted(names)
    ]
    halves = [by_instrument.class_features(parts[k::2], "Drums") for k in (0, 1)]
    expected = compare_features(*halves, overlap.DEFAULT_OVERLAP_BOUNDS)
    for metric, entry in drums_entry["metrics"].items():
        assert entry["ceiling"] == pytest.approx(expected[metric]["oa"], nan_ok=True), metric
    assert math.isfinite(drums_entry["metrics"]["drum_pattern_consistency"]["ceiling"])
    want = drums.drum_pattern_consistency(
        music.piece_from_score(symusic.Score(str(gen / "girls.mid"))).drums
    )
    assert drums_entry["metrics"]["drum_pattern_consistency"]["generated"]["mean"] == want
