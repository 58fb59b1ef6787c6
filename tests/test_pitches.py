"""Keys and ranges as a musician types them, normalised; bad ones named with the forms."""

from __future__ import annotations

import pytest

from midiforge.errors import MidiforgeError
from midiforge.pitches import (
    MODES,
    note_name,
    note_number,
    parse_key,
    parse_range,
    range_entries,
    range_table,
    scale_pitch_classes,
)


def test_keys_in_their_usual_spellings():
    assert parse_key(" d  Minor ") == "D minor"
    assert parse_key("F# dorian") == parse_key("f♯ Dorian") == "F# dorian"
    assert parse_key("Bb") == "Bb major" and parse_key("Am") == "A minor"
    assert parse_key("c harmonic minor") == "C harmonic minor"
    assert scale_pitch_classes("D minor") == {2, 4, 5, 7, 9, 10, 0}
    assert scale_pitch_classes("A harmonic minor") == {9, 11, 0, 2, 4, 5, 8}
    assert scale_pitch_classes("Cb major") == scale_pitch_classes("B major")
    assert all(len(steps) == len(set(steps)) and steps[0] == 0 for steps in MODES.values())


@pytest.mark.parametrize("bad", ["H minor", "C majr", "", "minor", "C# # major"])
def test_a_bad_key_is_one_line_naming_the_forms(bad):
    with pytest.raises(MidiforgeError, match=r"key: .* is not a key; use a tonic A-G") as err:
        parse_key(bad)
    assert "dorian" in str(err.value) and "\n" not in str(err.value)


def test_ranges_as_names_or_numbers_and_per_instrument():
    assert note_number("C4") == 60 and note_number("Bb-1") == 10 and note_number("127") == 127
    assert note_name(61) == "C#4"
    assert parse_range("48-84") == parse_range(" c3 - C6 ") == "C3-C6"
    assert parse_range("Piano: C3-C6, bass:E1-G3") == "piano:C3-C6,bass:E1-G3"
    assert range_entries("C-1-G9") == [(None, 0, 127)]
    table = range_table("bass:E1-G3,C4-C5")
    assert table[0].all()  # drums: every pitch
    assert table[33 + 1, 28] and not table[33 + 1, 60]  # electric bass: E1..G3
    assert table[0 + 1, 60] and not table[0 + 1, 28]  # piano gets the unnamed range


@pytest.mark.parametrize(
    ("bad", "why"),
    [("C3-", "is not a pitch range"), ("C6-C3", "goes down"), ("48-200", "outside MIDI"),
     ("H3-C4", "is not a pitch range"), ("kazoo:C3-C6", "kazoo"),
     ("C3-C4,C5-C6", "gives the unnamed range twice")],
)  # fmt: skip
def test_a_bad_range_is_one_line_naming_the_forms(bad, why):
    with pytest.raises(MidiforgeError, match=why) as err:
        parse_range(bad)
    assert "\n" not in str(err.value)


def test_key_tonic_reads_the_tonic_of_every_spelling_and_refuses_a_non_key():
    from midiforge.pitches import key_tonic

    keys = ("C major", "F# dorian", "Bb minor", "A# major")
    assert [key_tonic(k) for k in keys] == [0, 6, 10, 10]
    with pytest.raises(MidiforgeError, match="is not a key"):
        key_tonic("H major")
