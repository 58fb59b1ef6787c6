"""Note arrays and pieces read from symusic Scores and dataset rows, checked by hand."""

from __future__ import annotations

import numpy as np
import symusic

from midiforge.metrics import music, rhythm


def _score(tpq: int, notes, drums=(), time_signature=None) -> symusic.Score:
    score = symusic.Score(tpq)
    if time_signature is not None:
        score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    for is_drum, rows in ((False, notes), (True, drums)):
        if rows:
            track = symusic.Track("drums" if is_drum else "piano", 0, is_drum)
            for pitch, start, dur in rows:
                track.notes.append(symusic.Note(start, dur, pitch, 90))
            score.tracks.append(track)
    return score


def test_pitch_onset_duration_reads_beats_and_keeps_drums_apart():
    score = _score(480, [(64, 0, 480), (60, 0, 480), (67, 960, 240)], drums=[(36, 0, 120)])
    expected = [[60, 0, 1], [64, 0, 1], [67, 2, 0.5]]
    np.testing.assert_allclose(music.pitch_onset_duration(score), expected)
    np.testing.assert_allclose(music.drum_notes_from_score(score), [[36, 0, 0.25]])
    piece = music.piece_from_score(score)
    assert piece.beats_per_bar == 4.0  # no time signature: MIDI's 4/4
    assert len(piece.notes) == 3 and len(piece.drums) == 1
    # a score already in quarters gives the same ticks back
    np.testing.assert_array_equal(
        music.pitch_onset_duration(score.to("quarter")), music.pitch_onset_duration(score)
    )


def test_note_times_are_ticks_over_resolution_in_float64():
    # 480 ticks per quarter, 120 per 16th step. A: tick 8 to 180, i.e. step 0.0667 to exactly
    # 1.5 -> steps 0 and 1 (1.5 rounds to 2); B: tick 120 to 240 -> step 1. Step 0 holds one
    # pitch, step 1 two: polyphony (1 + 2) / 2 = 1.5. symusic's float32 quarters put A's end at
    # 1.49999995 steps, A loses step 1 and polyphony reads 1.0.
    score = _score(480, [(60, 8, 172), (64, 120, 120)])
    notes = music.pitch_onset_duration(score)
    assert notes[0, 1] == 8 / 480 and notes[0, 2] == 172 / 480  # exact float64 quotients
    assert rhythm.polyphony(notes) == 1.5
    quarters = score.to("quarter").tracks[0].notes.numpy()
    float32_end = float(quarters["time"][0]) + float(quarters["duration"][0])
    assert float32_end * 4 < 1.5  # the error the float64 path avoids


def test_beats_per_bar_from_the_first_time_signature():
    for ts, beats in (((6, 8), 3.0), ((3, 4), 3.0), ((2, 4), 2.0), ((9, 8), 4.5), ((2, 2), 4.0)):
        assert music.score_beats_per_bar(_score(480, [(60, 0, 480)], time_signature=ts)) == beats
    score = _score(480, [(60, 0, 480)], time_signature=(6, 8))
    score.time_signatures.append(symusic.TimeSignature(4 * 480, 4, 4))  # a later change
    assert music.score_beats_per_bar(score) == 3.0


def test_a_real_jig_is_read_in_6_8(datasets):
    score = symusic.Score(str(datasets / "nottingham" / "jigs132.mid"))
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (6, 8)
    piece = music.piece_from_score(score)
    assert piece.beats_per_bar == 3.0 and len(piece.drums) == 0


def test_dataset_rows_leave_drums_out_of_the_notes():
    fields = ["pitch", "frequency", "onset", "duration", "delta", "velocity", "program"]
    rows = np.array(
        [[67, 392.0, 2, 0.5, 2, 80, 0], [36, 65.4, 0, 0.25, 0, 90, -1], [60, 261.6, 0, 1, 0, 80, 0]]
    )
    np.testing.assert_allclose(music.notes_from_fields(rows, fields), [[60, 0, 1], [67, 2, 0.5]])
    np.testing.assert_allclose(music.drum_notes_from_fields(rows, fields), [[36, 0, 0.25]])
    piece = music.piece_from_fields(rows, fields, beats_per_bar=3.0)
    assert piece.beats_per_bar == 3.0 and len(piece.drums) == 1
    no_program = ["pitch", "onset", "duration"]
    assert len(music.drum_notes_from_fields(rows[:, [0, 2, 3]], no_program)) == 0
    assert len(music.notes_from_fields(rows[:, [0, 2, 3]], no_program)) == 3
