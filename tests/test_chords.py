"""Chord symbols, POP909's Harte labels and the template detector, on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from midiforge.chords import (
    CHORD_FORMS,
    bar_chord,
    detect_chord,
    detect_chords,
    harte_tones,
    parse_chord,
    parse_progression,
    progression,
    read_chord_annotation,
    tone_table,
)
from midiforge.errors import MidiforgeError


@pytest.mark.parametrize(
    ("symbol", "root", "tones"),
    [("C", 0, {0, 4, 7}), ("Am", 9, {9, 0, 4}), ("F#m7", 6, {6, 9, 1, 4}),
     ("Bb/D", 10, {10, 2, 5}), ("C/Bb", 0, {0, 4, 7, 10}), ("Gsus4", 7, {7, 0, 2}),
     ("Edim", 4, {4, 7, 10}), ("Caug", 0, {0, 4, 8}), ("G7", 7, {7, 11, 2, 5}),
     ("Cmaj7", 0, {0, 4, 7, 11}), ("Ebdim7", 3, {3, 6, 9, 0}), ("Bbm7b5", 10, {10, 1, 4, 8}),
     ("C#m", 1, {1, 4, 8}), ("Abmaj7", 8, {8, 0, 3, 7})],
)  # fmt: skip
def test_lead_sheet_symbols_read_as_root_and_tones(symbol, root, tones):
    chord = parse_chord(symbol)
    assert (chord.root, set(chord.tones)) == (root, tones)
    assert chord.mask.sum() == len(tones)


def test_no_chord_is_empty_and_progressions_split_on_spaces_and_bars():
    assert parse_chord("N").root is None and not parse_chord("n.c.").tones
    assert parse_progression(" Am | F|C  G nc ") == "Am F C G N"
    chords = progression("Am F C G")
    assert [bar_chord(chords, b).label for b in (0, 3, 4, 9)] == ["Am", "G", "Am", "F"]
    table = tone_table(progression("C N"))
    assert table.shape == (2, 12) and table[0].sum() == 3 and not table[1].any()


@pytest.mark.parametrize("bad", ["H", "Xm", "C/Q", "Am/", "Cmaj99", "7"])
def test_an_unreadable_symbol_is_a_one_line_error_naming_it_and_the_forms(bad):
    with pytest.raises(MidiforgeError) as err:
        parse_progression(f"Am {bad} C")
    message = str(err.value)
    assert message == f"chords: {bad!r} is not a chord symbol; use {CHORD_FORMS}"
    assert "\n" not in message and "F#m7, Bb/D, Gsus4, Edim" in message
    with pytest.raises(MidiforgeError, match="has no chord"):
        parse_progression(" | ")


def test_harte_labels_of_pop909():
    assert harte_tones("B:maj") == {11, 3, 6}
    assert harte_tones("A:min7") == {9, 0, 4, 7}
    assert harte_tones("C:maj/3") == {0, 4, 7}
    assert harte_tones("G:sus4(b7)") == {7, 0, 2, 5}
    assert harte_tones("F#:hdim7") == {6, 9, 0, 4}
    assert harte_tones("E:7/b7") == {4, 8, 11, 2}
    assert harte_tones("Bb:min/b3") == {10, 1, 5}
    assert harte_tones("N") == frozenset()
    with pytest.raises(MidiforgeError, match="'C:weird'"):
        harte_tones("C:weird")


def test_every_pop909_annotation_reads(datasets):
    rows = read_chord_annotation(datasets / "pop909" / "001" / "chord_midi.txt")
    assert len(rows) > 50 and rows[0][2] == frozenset()  # the song opens without a chord
    assert all(a < b for a, b, _ in rows) and sum(bool(t) for _, _, t in rows) > 40


def test_the_detector_names_the_template_that_fits():
    def hist(*classes, weights=None):
        h = np.zeros(12)
        h[list(classes)] = weights or 1.0
        return h

    assert detect_chord(hist(0, 4, 7)) == "C"
    assert detect_chord(hist(9, 0, 4)) == "Am"
    assert detect_chord(hist(7, 11, 2, 5)) == "G7"
    assert detect_chord(hist(11, 2, 5)) == "Bdim"
    assert detect_chord(hist(0, 4, 8)) in {"Caug", "Eaug", "G#aug"}  # symmetric: any root
    assert detect_chord(hist(0, 4, 7, 11, weights=[4, 4, 4, 1])) == "C"  # a passing seventh
    assert detect_chord(np.zeros(12)) == "N"
    labels = detect_chords(np.stack([hist(5, 9, 0), hist(2, 6, 9, 0)]))
    assert labels == ["F", "D7"] and all(parse_chord(x).tones for x in labels)
