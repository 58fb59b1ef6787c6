"""Pitch, rhythm and per-piece metrics against values worked out by hand on tiny pieces."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import symusic

from midiforge.metrics import features, music, pitch, rhythm
from midiforge.metrics.music import Piece

# Piece A, (pitch, onset beats, duration beats):
#   C4+E4 on beat 0 (1 beat), G4 on beat 1 (1 beat), C5 on beat 2 (2 beats), D4 on beat 6 (1 beat)
# It ends at beat 7; beats 4 and 5 are silent.
PIECE_A = np.array([[60, 0, 1], [64, 0, 1], [67, 1, 1], [72, 2, 2], [62, 6, 1]], dtype=np.float64)

# A 6/8 bar (3 beats) of quarter, eighth, quarter, eighth, four times: 12 beats.
JIG_BAR = [(0.0, 1.0), (1.0, 0.5), (1.5, 1.0), (2.5, 0.5)]
JIG = np.array(
    [[62, 3 * bar + on, dur] for bar in range(4) for on, dur in JIG_BAR], dtype=np.float64
)


def test_pitch_metrics_by_hand():
    assert pitch.pitch_range(PIECE_A) == 12  # 72 - 60
    assert pitch.n_pitches_used(PIECE_A) == 5
    assert pitch.n_pitch_classes_used(PIECE_A) == 4  # C, D, E, G
    # histogram C 2/5, D 1/5, E 1/5, G 1/5 -> H = -(0.4 log2 0.4 + 3 * 0.2 log2 0.2) = 1.921928
    assert pitch.pitch_class_entropy(PIECE_A) == pytest.approx(1.921928, abs=1e-6)
    # five different pitches, once each: log2 5 (C4 and C5 are two pitches, one class)
    assert pitch.pitch_entropy(PIECE_A) == pytest.approx(math.log2(5))
    assert pitch.scale_consistency(PIECE_A) == 1.0  # all in C major
    chromatic = np.array([[60 + i, i, 1] for i in range(12)], dtype=np.float64)
    assert pitch.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert pitch.scale_consistency(chromatic) == pytest.approx(7 / 12)
    octaves = np.array([[48, 0, 1], [60, 1, 1], [60, 2, 1], [72, 3, 1]], dtype=np.float64)
    assert pitch.pitch_class_entropy(octaves) == 0.0
    # pitches 48, 60, 72 with shares 1/4, 1/2, 1/4: 0.5 + 0.5 + 0.5 = 1.5 bits
    assert pitch.pitch_entropy(octaves) == pytest.approx(1.5)


def test_texture_and_rhythm_by_hand():
    # 16th grid: 28 steps; steps 0-3 hold 2 pitches, 4-15 one, 16-23 none, 24-27 one.
    assert rhythm.polyphony(PIECE_A) == pytest.approx(24 / 20)  # 24 pitch-steps / 20 busy steps
    assert rhythm.polyphony_rate(PIECE_A) == pytest.approx(4 / 28)
    assert rhythm.empty_beat_rate(PIECE_A) == pytest.approx(2 / 7)
    # bar 0 onsets at steps {0, 4, 8}, bar 1 at {8}: 2 of 16 positions differ -> 1 - 2/16
    assert rhythm.groove_consistency(PIECE_A) == pytest.approx(0.875)
    assert rhythm.note_density(PIECE_A) == pytest.approx(5 / 7)
    np.testing.assert_allclose(rhythm.inter_onset_intervals(PIECE_A), [1, 1, 4])
    np.testing.assert_allclose(rhythm.durations(PIECE_A), [1, 1, 1, 2, 1])
    # classes 1/8 .. 8 beats: four notes of 1 beat (class 3), one of 2 beats (class 4)
    np.testing.assert_allclose(
        rhythm.length_histogram(rhythm.durations(PIECE_A)), [0, 0, 0, 0.8, 0.2, 0, 0]
    )


def test_grid_ties_round_to_even_whatever_the_float_noise():
    # 1.5 and 2.5 steps exactly, and the same a few ulps off as sums of tick quotients give
    beats = np.array([0.375, 0.625, 100 / 480 + 80 / 480, 0.375 + 4e-16, 0.625 - 4e-16])
    np.testing.assert_array_equal(rhythm.grid_steps(beats), [2, 2, 2, 2, 2])


def test_groove_consistency_uses_the_bars_of_the_meter():
    # in its own 3-beat bars every bar is {0, 4, 6, 10} of 12 steps: 1.0
    assert rhythm.groove_consistency(JIG, beats_per_bar=3) == 1.0
    # read as 4/4 (16 steps): bar 0 {0,4,6,10,12}, bar 1 {0,2,6,8,12,14}, bar 2 {2,4,8,10,14};
    # each neighbour pair differs at 5 positions -> 1 - 5/16
    assert rhythm.groove_consistency(JIG, beats_per_bar=4) == pytest.approx(1 - 5 / 16)
    # 7/8 = 3.5 beats = 14 steps: the same two-note bar twice
    seven = np.array([[60, o, 0.5] for b in range(2) for o in (3.5 * b, 3.5 * b + 1)])
    assert rhythm.steps_in_bar(3.5) == 14
    assert rhythm.groove_consistency(seven, beats_per_bar=3.5) == 1.0


def test_empty_measure_rate_by_hand():
    # C4 on beat 0, D4 on beat 7 (1 beat each): the piece ends at beat 8
    notes = np.array([[60, 0, 1], [62, 7, 1]], dtype=np.float64)
    # 3/4: bars [0,3) [3,6) [6,9): the middle one is silent -> 1/3
    assert rhythm.empty_measure_rate(notes, beats_per_bar=3) == pytest.approx(1 / 3)
    # 4/4: bars [0,4) [4,8) both sound -> 0
    assert rhythm.empty_measure_rate(notes, beats_per_bar=4) == 0.0
    # a note ending on a barline does not sound in the next bar: [0,4) then silence to 8, D4
    held = np.array([[60, 0, 4], [62, 8, 4]], dtype=np.float64)
    assert rhythm.empty_measure_rate(held, beats_per_bar=4) == pytest.approx(1 / 3)
    assert math.isnan(rhythm.empty_measure_rate(np.zeros((0, 3))))


def _groove_on_ticks(score: symusic.Score, steps_per_bar: int) -> float:
    """Groove consistency done MusPy's way, on integer ticks with exact fractions."""
    tpq = score.ticks_per_quarter
    onsets, ends = [], []
    for track in score.tracks:
        for note in track.notes:
            onsets.append(round(Fraction(note.time * 4, tpq)))  # 16th step, ties to even
            ends.append(Fraction(note.end * 4, tpq))
    n_bars = -(-max(math.ceil(max(ends)), max(onsets) + 1) // steps_per_bar)
    grooves = [[False] * steps_per_bar for _ in range(n_bars)]
    for step in onsets:
        bar, position = divmod(step, steps_per_bar)
        grooves[bar][position] = True
    distance = sum(a != b for g, h in itertools.pairwise(grooves) for a, b in zip(g, h))
    return 1 - distance / (steps_per_bar * (n_bars - 1))


def test_a_real_jig_scores_its_groove_in_its_own_bars(datasets):
    score = symusic.Score(str(datasets / "nottingham" / "jigs132.mid"))  # 6/8
    piece = music.piece_from_score(score)
    reported = features.piece_metrics(piece)["groove_consistency"]
    assert reported == pytest.approx(_groove_on_ticks(score, 12), abs=1e-12)  # 3 beats of 16ths
    as_4_4 = rhythm.groove_consistency(piece.notes, beats_per_bar=4)
    assert as_4_4 == pytest.approx(_groove_on_ticks(score, 16), abs=1e-12)
    assert reported > 0.9 > 0.75 > as_4_4  # a jig is regular in 6/8, not in 4-beat windows


def test_piece_metrics_table():
    metrics = features.piece_metrics(Piece(PIECE_A))
    assert metrics["mean_ioi"] == pytest.approx(2.0)
    assert metrics["mean_duration"] == pytest.approx(1.2)
    assert metrics["pitch_entropy"] == pytest.approx(math.log2(5))
    assert metrics["empty_measure_rate"] == 0.0  # bars [0,4) and [4,8) both sound
    assert "drum_pattern_consistency" not in metrics  # no drums, no drum metric
    jig = features.piece_metrics(Piece(JIG, beats_per_bar=3.0))
    assert jig["groove_consistency"] == 1.0
    drums = np.array([[36, 0, 0.25], [38, 0.25, 0.25], [42, 1 / 3, 0.25]])
    with_drums = features.piece_metrics(Piece(PIECE_A, drums=drums))
    # duple: 0 and 1/4 of 3 hits; triple: 0 and 1/3 of 3 hits -> max(2/3, 2/3)
    assert with_drums["drum_pattern_consistency"] == pytest.approx(2 / 3)
    assert {k: v for k, v in with_drums.items() if k != "drum_pattern_consistency"} == metrics
    feats = features.set_features([Piece(PIECE_A), Piece(PIECE_A, drums=drums)])
    assert feats["pitch_class_histogram"].shape == (2, 12)
    assert math.isnan(feats["drum_pattern_consistency"][0])


def test_empty_piece_is_nan_not_an_error():
    metrics = features.piece_metrics(Piece(np.zeros((0, 3))))
    assert math.isnan(metrics["pitch_range"]) and math.isnan(metrics["polyphony"])
    assert math.isnan(metrics["pitch_entropy"]) and math.isnan(metrics["groove_consistency"])
    assert metrics["n_pitches_used"] == 0
