"""Encode/decode pairs on tiny hand-made pieces with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from midiforge.data.encode import (
    FIELD,
    build_tokenizer,
    ids_to_score,
    notes_from_score,
    score_from_notes,
    score_to_ids,
    special_ids,
)
from midiforge.errors import MidiforgeError

TPQ = 480


def _piece(tracks: int = 1) -> Score:
    score = Score(TPQ)
    score.tempos.append(Tempo(0, 100.0))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    for k in range(tracks):
        track = Track(program=k * 40)
        for t, d, p in [(0, 480, 60), (0, 480, 64), (0, 480, 67), (480, 240, 72), (720, 960, 71)]:
            track.notes.append(Note(t + k * 120, d, p - k * 12, 80))
        score.tracks.append(track)
    return score


def test_notes_from_score_known_values() -> None:
    notes = notes_from_score(_piece())
    assert notes.shape == (5, 7) and notes.dtype == np.float32
    np.testing.assert_array_equal(notes[:, FIELD["pitch"]], [60, 64, 67, 72, 71])
    np.testing.assert_array_equal(notes[:, FIELD["onset"]], [0, 0, 0, 1, 1.5])
    np.testing.assert_array_equal(notes[:, FIELD["delta"]], [0, 0, 0, 1, 0.5])
    np.testing.assert_array_equal(notes[:, FIELD["duration"]], [1, 1, 1, 0.5, 2])
    assert notes[0, FIELD["frequency"]] == pytest.approx(261.6256, rel=1e-5)


def test_notes_round_trip_multi_program() -> None:
    notes = notes_from_score(_piece(tracks=2))
    again = notes_from_score(score_from_notes(notes, tempo_bpm=90))
    np.testing.assert_array_equal(again, notes)
    assert sorted(set(notes[:, FIELD["program"]].tolist())) == [0, 40]


@pytest.mark.parametrize("name", ["remi", "tsd", "midilike", "structured"])
def test_tokens_round_trip(name: str) -> None:
    tok = build_tokenizer(name)
    ids = score_to_ids(tok, _piece())
    bos = special_ids(tok)["BOS"]
    back = notes_from_score(ids_to_score(tok, [bos, *ids]))
    src = notes_from_score(_piece())
    np.testing.assert_array_equal(back[:, FIELD["pitch"]], src[:, FIELD["pitch"]])
    np.testing.assert_array_equal(back[:, FIELD["onset"]], src[:, FIELD["onset"]])


@pytest.mark.parametrize("name", ["remi", "tsd"])
@pytest.mark.parametrize("use_programs", [False, True])
def test_a_stream_of_only_special_tokens_decodes_to_an_empty_score(
    name: str, use_programs: bool
) -> None:
    # a model can sample EOS first: the file it writes is empty, not a crash
    tok = build_tokenizer(name, use_programs=use_programs)
    special = special_ids(tok)
    score = ids_to_score(tok, [special["BOS"], special["EOS"]])
    assert score.note_num() == 0
    assert score.ticks_per_quarter == tok.time_division
    assert [ts.numerator for ts in score.time_signatures] == [4]
    assert ids_to_score(tok, []).note_num() == 0


def test_tokenizer_errors_name_the_fix() -> None:
    with pytest.raises(MidiforgeError, match="expected one of: midilike"):
        build_tokenizer("nope")
    with pytest.raises(MidiforgeError, match="several ids per step"):
        build_tokenizer("Octuple")
    with pytest.raises(MidiforgeError, match="merge the tracks"):
        score_to_ids(build_tokenizer("remi"), _piece(tracks=2))
    assert len(score_to_ids(build_tokenizer("remi", use_programs=True), _piece(tracks=2))) > 10
