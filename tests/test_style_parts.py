"""Each style's band and lines, fitted on real chorales and folk tunes, and played back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from midiforge.data import encode
from midiforge.data.corpora import jsb_score, with_part_programs
from midiforge.schema import FIELD
from midiforge.style_parts import (
    NO_PARTS,
    Parts,
    fit_style_parts,
    in_registers,
    play_parts,
    style_parts,
)

VOICES = (40, 41, 42, 43)  # the chorales' soprano .. bass (data.corpora.PART_PROGRAMS)
MELODY, CHORDS = 40, 24  # a Nottingham tune's parts
CHORALE, FOLK, EVERY = "chorale", "folk", "*"


def chorales(datasets: Path, n: int = 12) -> list[np.ndarray]:
    """Note rows of the first ``n`` training chorales, their voices as four strings."""
    raw = json.loads((datasets / "jsb_chorales" / "Jsb16thSeparated.json").read_text())
    return [encode.notes_from_score(jsb_score(voices)) for voices in raw["train"][:n]]


def tunes(datasets: Path, every: int = 20) -> list[np.ndarray]:
    """Note rows of every ``every``-th Nottingham tune (all collections; a few tunes have
    double stops in their melody, so a handful would not tell a line): melody on violin,
    chords on guitar."""
    paths = sorted((datasets / "nottingham").glob("*.mid"))[::every]
    return [encode.notes_from_score(with_part_programs(Score(str(p)), "nottingham")) for p in paths]


@pytest.fixture(scope="module")
def table(datasets):
    folk = tunes(datasets)
    styles = [CHORALE] * 12 + [FOLK] * len(folk)
    return fit_style_parts(chorales(datasets) + folk, styles, EVERY)


def test_the_chorales_four_voices_are_legato_lines_and_the_folk_melody_a_line(table):
    chorale, folk = style_parts(table, CHORALE, EVERY), style_parts(table, FOLK, EVERY)
    assert chorale.programs == chorale.lines == chorale.legato == VOICES
    assert chorale.held >= 2.0  # half notes and fermatas are held whole
    assert folk.programs == (CHORDS, MELODY)
    assert folk.lines == (MELODY,)  # the guitar strums chords: not one note at a time
    assert style_parts(table, None, EVERY) == NO_PARTS  # a mixture of styles: nothing kept
    assert style_parts({}, CHORALE, EVERY) == NO_PARTS  # a run saved before the table
    alone = {EVERY: table[EVERY]}  # a run on one unlabelled corpus plays its parts
    assert style_parts(alone, None, EVERY) == Parts.from_dict(table[EVERY])
    assert Parts.from_dict(folk.to_dict()) == folk


def _sounding_together(notes: np.ndarray, program: int) -> int:
    """Pairs of notes of ``program`` whose sounding times overlap."""
    mine = notes[notes[:, FIELD["program"]] == program]
    mine = mine[np.argsort(mine[:, FIELD["onset"]], kind="stable")]
    ends = mine[:-1, FIELD["onset"]] + mine[:-1, FIELD["duration"]]
    return int((mine[1:, FIELD["onset"]] < ends - 1e-3).sum())


def test_lines_play_one_note_at_a_time_held_to_the_next(datasets, table):
    """A real chorale with the faults a denoiser makes (a second note stacked on a voice, an
    octave off; notes cut short and held too long), then played as lines: each voice one note
    at a time, the stacked notes gone and the real ones kept, the cut notes held again; a
    piano that is not a line keeps its chord; the primer rows stay as they were."""
    piece = chorales(datasets, 13)[12]  # not one the table was fitted on
    parts = style_parts(table, CHORALE, EVERY)
    rng = np.random.default_rng(0)
    faulty = piece.copy()
    cut = rng.random(len(faulty)) < 0.3
    faulty[cut, FIELD["duration"]] *= 0.5  # rests inside the voices
    long = rng.random(len(faulty)) < 0.2
    faulty[long, FIELD["duration"]] += 2.0  # overlapping the voice's next note
    stacked = faulty[rng.random(len(faulty)) < 0.3].copy()
    stacked[:, FIELD["pitch"]] += 12  # a second note of the same voice at the same onset
    piano = faulty[:3].copy()
    piano[:, FIELD["program"]] = 0
    piano[:, FIELD["onset"]] = piano[0, FIELD["onset"]]  # a chord, on an instrument with no line
    rows = np.concatenate([faulty, stacked, piano])
    rows = rows[np.argsort(rows[:, FIELD["onset"]], kind="stable")]
    assert sum(_sounding_together(rows, v) for v in VOICES) > len(stacked)

    first = 8
    out = play_parts(rows, parts, first)
    assert np.array_equal(out[:first], rows[:first])  # the primer is kept exactly
    new = out[first:]
    assert all(_sounding_together(new, v) == 0 for v in VOICES)
    assert (new[:, FIELD["program"]] == 0).sum() == (rows[first:, FIELD["program"]] == 0).sum()
    real = {(round(float(n[FIELD["onset"]]), 3), int(n[FIELD["pitch"]]), int(n[FIELD["program"]]))
            for n in piece}  # fmt: skip
    voiced = new[new[:, FIELD["program"]] != 0]
    kept = [(round(float(n[FIELD["onset"]]), 3), int(n[FIELD["pitch"]]), int(n[FIELD["program"]]))
            for n in voiced]  # fmt: skip
    assert len(kept) == len(set(kept))
    assert np.mean([k in real for k in kept]) >= 0.95  # voice leading keeps the real note
    for v in VOICES:  # the voices follow on unbroken again, as Bach's do
        mine = new[new[:, FIELD["program"]] == v]
        gaps = mine[1:, FIELD["onset"]] - (mine[:-1, FIELD["onset"]] + mine[:-1, FIELD["duration"]])
        assert np.mean(np.abs(gaps) < 1e-3) >= 0.95, v
    onsets = out[:, FIELD["onset"]]
    assert np.all(np.diff(onsets) >= 0)
    assert np.allclose(out[first:, FIELD["delta"]], np.diff(onsets)[first - 1 :], atol=1e-4)
    assert np.array_equal(play_parts(rows, NO_PARTS, first), rows)  # no table: unchanged


def test_a_legato_note_is_held_no_longer_than_the_style_holds_one():
    """Rows: one violin line with a long rest; the note before the rest is held up to
    ``held`` beats, not across the whole rest."""
    rows = np.zeros((3, len(FIELD)), np.float32)
    rows[:, FIELD["program"]] = 40
    rows[:, FIELD["pitch"]] = (60, 62, 64)
    rows[:, FIELD["onset"]] = (0.0, 1.0, 9.0)
    rows[:, FIELD["duration"]] = 0.5
    out = play_parts(rows, Parts((40,), (40,), (40,), held=2.0))
    assert out[:, FIELD["duration"]].tolist() == [1.0, 2.0, 0.5]
    plain = play_parts(rows, Parts((40,), (40,), (), held=2.0))  # a line, not legato
    assert plain[:, FIELD["duration"]].tolist() == [0.5, 0.5, 0.5]


def test_notes_outside_their_parts_register_move_back_by_octaves(datasets, table):
    """A held-out chorale with a third of its notes thrown an octave up or down, out of their
    voice's register: moved back by octaves, the real notes come back, every pitch class
    stays, and a program the style does not play is left where it is."""
    piece = chorales(datasets, 13)[12]
    parts = style_parts(table, CHORALE, EVERY)
    registers = {program: (low, high) for program, low, high in parts.registers}
    assert set(registers) == set(VOICES)
    assert registers[40][0] > registers[43][0] and registers[40][1] > registers[43][1]
    assert all(high - low >= 11 for low, high in registers.values())
    rng = np.random.default_rng(1)
    thrown = piece.copy()
    which = rng.random(len(thrown)) < 0.33
    thrown[which, FIELD["pitch"]] += rng.choice([-12, 12], which.sum())
    other = thrown[:4].copy()
    other[:, FIELD["program"]], other[:, FIELD["pitch"]] = 0, 20  # a piano far below
    rows = np.concatenate([thrown, other])
    out = in_registers(rows, parts)
    pitch, program = out[:, FIELD["pitch"]], out[:, FIELD["program"]]
    for v, (low, high) in registers.items():
        assert np.all((pitch[program == v] >= low) & (pitch[program == v] <= high)), v
    assert np.array_equal(pitch % 12, rows[:, FIELD["pitch"]] % 12)
    low, high = (
        np.array([registers[int(v)][i] for v in piece[:, FIELD["program"]]]) for i in (0, 1)
    )
    outside = (thrown[:, FIELD["pitch"]] < low) | (thrown[:, FIELD["pitch"]] > high)
    assert outside.sum() >= 0.5 * which.sum()  # most throws leave the register
    back = pitch[: len(piece)] == piece[:, FIELD["pitch"]]
    assert np.mean(back[outside]) >= 0.95  # those come back to the note Bach wrote
    assert np.array_equal(pitch[: len(piece)][~outside], thrown[~outside, FIELD["pitch"]])
    assert np.all(pitch[len(piece) :] == 20)
    assert np.allclose(out[:, FIELD["frequency"]], 440 * 2 ** ((pitch - 69) / 12), rtol=1e-5)


def test_legato_lines_enter_and_end_with_the_piece():
    """Two legato voices: the viola enters a beat late and stops a beat and a half early;
    it is moved to enter with the violin and held to the end, each within ``held`` beats.
    One that enters later than ``held`` beats is left to enter where it does."""
    rows = np.zeros((5, len(FIELD)), np.float32)
    rows[:, FIELD["program"]] = (40, 41, 40, 41, 40)
    rows[:, FIELD["pitch"]] = (72, 64, 74, 65, 76)
    rows[:, FIELD["onset"]] = (0.0, 1.0, 2.0, 3.0, 4.0)
    rows[:, FIELD["duration"]] = (2.0, 2.0, 2.0, 1.5, 2.0)
    out = play_parts(rows, Parts((40, 41), (40, 41), (40, 41), held=2.0))
    viola = out[out[:, FIELD["program"]] == 41]
    assert viola[:, FIELD["onset"]].tolist() == [0.0, 3.0]  # enters with the piece
    assert viola[:, FIELD["duration"]].tolist() == [3.0, 3.0]  # held on, and to the end (6)
    assert np.all(np.diff(out[:, FIELD["onset"]]) >= 0)
    assert np.allclose(out[1:, FIELD["delta"]], np.diff(out[:, FIELD["onset"]]))
    late = rows.copy()
    late[1, FIELD["onset"]] = 2.5  # 2.5 beats in: later than a held note reaches
    out = play_parts(late, Parts((40, 41), (40, 41), (40, 41), held=2.0))
    assert out[out[:, FIELD["program"]] == 41][0, FIELD["onset"]] == 2.5


def test_a_slurred_pop_melody_is_a_line_and_its_accompaniment_is_not(datasets):
    """POP909's sung melody slurs into its next note (it overlaps it, briefly) yet a second
    melody note almost never starts with another: a line, as a voice is; its strings and
    piano, which play chords, are not."""
    paths = sorted((datasets / "pop909").glob("*/[0-9][0-9][0-9].mid"))[:12]
    songs = [encode.notes_from_score(with_part_programs(Score(str(p)), "pop909")) for p in paths]
    parts = style_parts(fit_style_parts(songs, ["pop"] * len(songs), EVERY), "pop", EVERY)
    melody, strings, piano = 73, 48, 0  # data.corpora.PART_PROGRAMS["pop909"]
    assert parts.programs == (piano, strings, melody)
    assert parts.lines == (melody,) and parts.legato == ()
    overlapping = sum(_sounding_together(s, melody) for s in songs)
    assert overlapping > 0  # slurred: the rule is not "never overlaps"
    played = play_parts(songs[0], parts)
    assert _sounding_together(played, melody) == 0


def test_two_voices_on_one_pitch_are_parted():
    """Soprano and alto denoised onto one pitch: the alto takes its other candidate note at
    that onset where it has one, and where it has none its note moves an octave within its
    register (a doubling at the octave), so the two voices sound two pitches."""
    rows = np.zeros((5, len(FIELD)), np.float32)
    rows[:, FIELD["program"]] = (40, 41, 41, 40, 41)
    rows[:, FIELD["pitch"]] = (67, 67, 71, 69, 69)
    rows[:, FIELD["onset"]] = (0.0, 0.0, 0.0, 1.0, 1.0)
    rows[:, FIELD["duration"]] = 1.0
    parts = Parts((40, 41), (40, 41), (40, 41), 2.0, ((40, 60, 81), (41, 55, 76)))
    out = play_parts(rows, parts)
    alto = out[out[:, FIELD["program"]] == 41]
    assert alto[:, FIELD["pitch"]].tolist() == [71, 57]  # the other candidate; A4 → A3
    assert np.isclose(alto[1, FIELD["frequency"]], 220.0)
    soprano = out[out[:, FIELD["program"]] == 40]
    assert soprano[:, FIELD["pitch"]].tolist() == [67, 69]
