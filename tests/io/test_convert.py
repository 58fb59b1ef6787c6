"""Conversion to MIDI: music21 corpus chorales, Guitar Pro files, ABC, skip report, CLI.

Each converted file is checked against the source's own note list, computed here independently
with music21 or PyGuitarPro: same number of notes, same pitches, same onsets on the beat grid.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import guitarpro
import music21
import pytest
import symusic

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.io.convert import REPORT_NAME, convert
from midiforge.io.guitarpro import unfold_repeats

GRID_PER_BEAT = 48  # onsets compared on a 1/48-quarter grid (covers triplets and 32nds)
N_CHORALES = 3


def _midi_notes(path: str | Path, *, with_program: bool = False) -> Counter:
    """(onset on the grid, pitch[, program]) of every note of a MIDI file."""
    score = symusic.Score(str(path))
    tpq = score.ticks_per_quarter
    return Counter(
        (round(n.time * GRID_PER_BEAT / tpq), n.pitch, *((t.program,) if with_program else ()))
        for t in score.tracks
        for n in t.notes
    )


def _music21_notes(stream) -> Counter:
    """music21's own notes: repeats expanded, ties merged, chords split into pitches."""
    with contextlib.suppress(Exception):  # repeat marks music21 cannot expand
        stream = stream.expandRepeats()
    notes = Counter()
    for element in stream.stripTies().flatten().notes:
        onset = round(float(element.offset) * GRID_PER_BEAT)
        for pitch in element.pitches:
            notes[(onset, pitch.midi)] += 1
    return notes


def test_bach_chorales_from_the_music21_corpus(tmp_path: Path) -> None:
    report = convert("music21:bach", tmp_path / "bach", limit=N_CHORALES, jobs=2)
    assert len(report.converted) == N_CHORALES and not report.skipped
    saved = json.loads((tmp_path / "bach" / REPORT_NAME).read_text())
    assert len(saved["converted"]) == N_CHORALES
    for item in report.converted:
        (out,) = item["outputs"]
        assert Path(out).relative_to(tmp_path / "bach").parts[0] == "bach"
        expected = _music21_notes(music21.converter.parse(item["source"]))
        assert sum(expected.values()) > 100
        assert _midi_notes(out) == expected, item["source"]
        parts = music21.converter.parse(item["source"]).parts
        voiced = [t for t in symusic.Score(out).tracks if len(t.notes)]  # not the tempo track
        assert [t.name for t in voiced] == [p.partName for p in parts if p.flatten().notes]


def _gp_reference(song) -> Counter:
    """PyGuitarPro's struck notes (ties continue a note, dead notes are muted) without repeats."""
    first = song.measureHeaders[0].start
    notes = Counter()
    for track in song.tracks:
        drum = track.isPercussionTrack
        for measure in track.measures:
            for voice in measure.voices:
                for beat in voice.beats:
                    for note in beat.notes:
                        if note.type == guitarpro.NoteType.normal:
                            onset = round((beat.start - first) * GRID_PER_BEAT / 960)
                            program = 0 if drum else track.channel.instrument
                            notes[
                                (onset, note.realValue + (0 if drum else track.offset), program)
                            ] += 1
    return notes


def test_guitar_pro_files_match_pyguitarpro(datasets: Path, tmp_path: Path) -> None:
    folder = datasets / "guitarpro"
    report = convert(folder, tmp_path / "gp", jobs=1)
    converted = {Path(c["source"]).name: c["outputs"][0] for c in report.converted}
    skipped = {Path(s["source"]).name: s["reason"] for s in report.skipped}
    assert set(converted) | set(skipped) == {p.name for p in folder.iterdir()}
    assert len(converted) >= 25
    checked = 0
    for name, out in converted.items():
        song = guitarpro.parse(str(folder / name))
        if any(h.isRepeatOpen or h.repeatClose > 0 for h in song.measureHeaders):
            continue
        assert _midi_notes(out, with_program=True) == _gp_reference(song), name
        checked += 1
    assert checked >= 20
    for name, reason in skipped.items():  # only the files without a single note
        assert reason == "the file holds no notes", name
        assert sum(_gp_reference(guitarpro.parse(str(folder / name))).values()) == 0


def test_guitar_pro_repeats_are_unfolded(datasets: Path, tmp_path: Path) -> None:
    # "Demo v5": bars 1-4 repeated once, bar 4 is the first ending and bar 5 the second
    song = guitarpro.parse(str(datasets / "guitarpro" / "Demo v5.gp5"))
    out = tmp_path / "demo.mid"
    convert(datasets / "guitarpro" / "Demo v5.gp5", out)
    headers = song.measureHeaders
    played = [0, 1, 2, 3, 0, 1, 2, *range(4, len(headers))]
    by_measure = Counter()
    for track in song.tracks:
        for index, measure in enumerate(track.measures):
            for voice in measure.voices:
                for beat in voice.beats:
                    by_measure[index] += sum(
                        n.type == guitarpro.NoteType.normal for n in beat.notes
                    )
    score = symusic.Score(str(out))
    assert score.note_num() == sum(by_measure[i] for i in played)
    assert score.tempos[0].qpm == pytest.approx(song.tempo, rel=1e-5)  # MIDI stores µs per beat
    assert [t.program for t in score.tracks if not t.is_drum] == [
        t.channel.instrument for t in song.tracks if not t.isPercussionTrack
    ]
    # the last bar ends where the unfolded bars add up to
    total_ticks = sum(headers[i].length for i in played)
    assert max(n.end for t in score.tracks for n in t.notes) <= total_ticks
    assert max(n.time for t in score.tracks for n in t.notes) >= total_ticks - headers[-1].length


def _bar(open_=False, close=-1, alternative=0):
    return SimpleNamespace(isRepeatOpen=open_, repeatClose=close, repeatAlternative=alternative)


def test_unfold_repeats_known_answers() -> None:
    plain = [_bar(), _bar(), _bar()]
    assert unfold_repeats(plain) == [0, 1, 2]
    twice = [_bar(), _bar(open_=True), _bar(close=2), _bar()]  # bar 2-3 played three times
    assert unfold_repeats(twice) == [0, 1, 2, 1, 2, 1, 2, 3]
    endings = [_bar(open_=True), _bar(), _bar(close=1, alternative=1), _bar(alternative=2)]
    assert unfold_repeats(endings) == [0, 1, 2, 0, 1, 3]
    from_start = [_bar(close=1), _bar(), _bar(close=1)]  # no open bar: from the start / after
    assert unfold_repeats(from_start) == [0, 0, 1, 2, 1, 2]


ABC_BOOK = """X:1
T:First
M:4/4
L:1/4
K:C
C D E F | G2 G2 |]

X:2
T:Second
M:3/4
L:1/8
K:G
G2 A2 B2 | d6 |]
"""


def test_abc_book_gives_one_midi_per_tune(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "book.abc").write_text(ABC_BOOK)
    report = convert(src, tmp_path / "out", jobs=1)
    outputs = report.converted[0]["outputs"]
    assert [Path(p).name for p in outputs] == ["book_000.mid", "book_001.mid"]
    assert sorted(_midi_notes(outputs[0]).elements()) == [
        (
            0,
            60,
        ),
        (48, 62),
        (96, 64),
        (144, 65),
        (192, 67),
        (288, 67),
    ]
    assert sorted(p for _, p in _midi_notes(outputs[1]).elements()) == [67, 69, 71, 74]


def test_skip_report_and_errors(datasets: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "mixed"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "good.mid").write_bytes((datasets / "nottingham" / "ashover1.mid").read_bytes())
    (src / "broken.mid").write_bytes(b"MThd garbage")
    (src / "broken.gp5").write_bytes(b"FICHIER GUITAR PRO v5.00 but nothing else")
    (src / "broken.musicxml").write_text("<score-partwise><part")
    (src / "notes.txt").write_text("not music")
    report = convert(src, tmp_path / "out", jobs=2)
    assert [Path(c["source"]).name for c in report.converted] == ["good.mid"]
    assert (tmp_path / "out" / "deep" / "good.mid").read_bytes() == (
        src / "deep" / "good.mid"
    ).read_bytes()
    reasons = {Path(s["source"]).name: s["reason"] for s in report.skipped}
    assert set(reasons) == {"broken.mid", "broken.gp5", "broken.musicxml", "notes.txt"}
    assert "unsupported format '.txt'" in reasons["notes.txt"]
    assert "Guitar Pro" in reasons["broken.gp5"]
    assert "MIDI" in reasons["broken.mid"]
    with pytest.raises(MidiforgeError, match="Guitar Pro"):
        convert(src / "broken.gp5", tmp_path / "one.mid")
    with pytest.raises(MidiforgeError, match="music21:nosuchcomposer"):
        convert("music21:nosuchcomposer", tmp_path / "x")
    assert main(["convert", str(src), str(tmp_path / "cli"), "--jobs", "1"]) == 0
    assert "skipped 4" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "absent"), str(tmp_path / "cli2")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _badly_formed_repeats() -> music21.stream.Score:
    """Six whole notes C4..F4 with two endings (bars 3 and 4) and an end-repeat barline in the
    second ending, with no start-repeat and none in the first: music21 cannot expand it."""
    part = music21.stream.Part()
    measures = []
    for i in range(6):
        measure = music21.stream.Measure(number=i + 1)
        measure.append(music21.note.Note(60 + i, quarterLength=4))
        measures.append(measure)
    measures[3].rightBarline = music21.bar.Repeat(direction="end")
    part.insert(0, music21.spanner.RepeatBracket(measures[2], number=1))
    part.insert(0, music21.spanner.RepeatBracket(measures[3], number=2))
    for measure in measures:
        part.append(measure)
    score = music21.stream.Score()
    score.insert(0, part)
    return score


def test_a_score_whose_repeats_cannot_be_expanded_converts_as_written(tmp_path: Path) -> None:
    src = tmp_path / "src" / "endings.musicxml"
    src.parent.mkdir()
    _badly_formed_repeats().write("musicxml", fp=str(src))
    parsed = music21.converter.parse(str(src))
    with pytest.raises(music21.repeat.ExpanderException, match="badly formed repeats"):
        parsed.expandRepeats()  # the rejection is music21's own, on the file as read back
    report = convert(tmp_path / "src", tmp_path / "out", jobs=1)
    assert not report.skipped
    (entry,) = report.converted
    (warning,) = entry["warnings"]
    assert "repeats not expanded" in warning and "notated order" in warning
    saved = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert saved["converted"][0]["warnings"] == [warning]
    score = symusic.Score(entry["outputs"][0])
    notes = sorted((n.time, n.pitch) for t in score.tracks for n in t.notes)
    bar = 4 * score.ticks_per_quarter
    assert notes == [(i * bar, 60 + i) for i in range(6)]  # each bar once, in notated order
