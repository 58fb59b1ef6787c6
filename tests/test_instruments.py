"""The GM table and how a musician's words become programs a model knows."""

from __future__ import annotations

import pytest

from midiforge.errors import MidiforgeError
from midiforge.instruments import (
    DRUMS,
    GM_NAMES,
    candidates,
    family_of,
    family_program,
    instrument_name,
    parse_instruments,
    resolve_instruments,
)


def test_the_table_is_the_general_midi_sound_set():
    assert len(GM_NAMES) == 128 and len(set(GM_NAMES)) == 128
    assert instrument_name(0) == "Acoustic Grand Piano"
    assert instrument_name(40) == "Violin" and instrument_name(127) == "Gunshot"
    assert instrument_name(DRUMS) == "Drums"
    assert family_of(33) == "Bass" and family_of(73) == "Pipe" and family_of(-1) == "Drums"
    assert family_program(35) == 32 and family_program(0) == 0 and family_program(-1) == -1
    with pytest.raises(MidiforgeError, match=r"0\.\.127"):
        instrument_name(128)


def test_words_mean_programs_best_first():
    assert candidates("Violin") == [40]
    assert candidates("33") == [33] and candidates("-1") == [DRUMS]
    assert candidates("drums") == [DRUMS]
    bass = candidates("bass")
    assert bass[:8] == list(range(32, 40))  # the family first
    assert 43 in bass and 70 not in bass  # Contrabass ends in "bass", Bassoon does not
    assert candidates("acoustic bass") == [32]
    assert candidates("pianno") == [] and candidates("200") == []


def test_parse_normalises_and_names_what_is_wrong():
    assert parse_instruments(" Piano, BASS ,drums") == ("piano", "bass", "drums")
    assert parse_instruments(["violin", 42]) == ("violin", "42")
    with pytest.raises(MidiforgeError, match="did you mean piano"):
        parse_instruments("pianno")
    with pytest.raises(MidiforgeError, match="empty request"):
        parse_instruments(" , ")
    with pytest.raises(MidiforgeError, match="twice"):
        parse_instruments("piano,piano")


def test_resolve_picks_what_the_model_knows_or_names_what_it_does():
    strings_quartet = [0, 40, 41, 42, 43]
    assert resolve_instruments(["piano", "bass"], strings_quartet) == [0, 43]
    assert resolve_instruments(["strings"], strings_quartet) == [40]
    with pytest.raises(MidiforgeError) as err:
        resolve_instruments(["drums"], strings_quartet)
    message = str(err.value)
    assert "never learned 'drums'" in message and "Contrabass (43)" in message
    assert "\n" not in message
    with pytest.raises(MidiforgeError, match="name it once"):
        resolve_instruments(["violin", "strings"], strings_quartet)
