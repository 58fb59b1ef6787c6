"""Every musical metric against values worked out by hand on tiny pieces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import symusic

from midiforge.metrics import music

# Piece A, (pitch, onset beats, duration beats):
#   C4+E4 on beat 0 (1 beat), G4 on beat 1 (1 beat), C5 on beat 2 (2 beats), D4 on beat 6 (1 beat)
# It ends at beat 7; beats 4 and 5 are silent.
PIECE_A = np.array([[60, 0, 1], [64, 0, 1], [67, 1, 1], [72, 2, 2], [62, 6, 1]], dtype=np.float64)


def test_pitch_metrics_by_hand():
    assert music.pitch_range(PIECE_A) == 12  # 72 - 60
    assert music.n_pitches_used(PIECE_A) == 5
    assert music.n_pitch_classes_used(PIECE_A) == 4  # C, D, E, G
    # histogram C 2/5, D 1/5, E 1/5, G 1/5 -> H = -(0.4 log2 0.4 + 3 * 0.2 log2 0.2) = 1.921928
    assert music.pitch_class_entropy(PIECE_A) == pytest.approx(1.921928, abs=1e-6)
    assert music.scale_consistency(PIECE_A) == 1.0  # all in C major
    chromatic = np.array([[60 + i, i, 1] for i in range(12)], dtype=np.float64)
    assert music.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert music.scale_consistency(chromatic) == pytest.approx(7 / 12)


def test_texture_and_rhythm_by_hand():
    # 16th grid: 28 steps; steps 0-3 hold 2 pitches, 4-15 one, 16-23 none, 24-27 one.
    assert music.polyphony(PIECE_A) == pytest.approx(24 / 20)  # 24 pitch-steps / 20 busy steps
    assert music.polyphony_rate(PIECE_A) == pytest.approx(4 / 28)
    assert music.empty_beat_rate(PIECE_A) == pytest.approx(2 / 7)
    # bar 0 onsets at steps {0, 4, 8}, bar 1 at {8}: 2 of 16 positions differ -> 1 - 2/16
    assert music.groove_consistency(PIECE_A) == pytest.approx(0.875)
    assert music.note_density(PIECE_A) == pytest.approx(5 / 7)
    np.testing.assert_allclose(music.inter_onset_intervals(PIECE_A), [1, 1, 4])
    np.testing.assert_allclose(music.durations(PIECE_A), [1, 1, 1, 2, 1])
    # classes 1/8 .. 8 beats: four notes of 1 beat (class 3), one of 2 beats (class 4)
    np.testing.assert_allclose(
        music.length_histogram(music.durations(PIECE_A)), [0, 0, 0, 0.8, 0.2, 0, 0]
    )
    metrics = music.piece_metrics(PIECE_A)
    assert metrics["mean_ioi"] == pytest.approx(2.0)
    assert metrics["mean_duration"] == pytest.approx(1.2)


def test_pitch_onset_duration_reads_beats_and_skips_drums():
    score = symusic.Score(480)
    piano = symusic.Track("piano", 0, False)
    for pitch, start, dur in [(64, 0, 480), (60, 0, 480), (67, 960, 240)]:
        piano.notes.append(symusic.Note(start, dur, pitch, 90))
    drums = symusic.Track("drums", 0, True)
    drums.notes.append(symusic.Note(0, 120, 36, 90))
    score.tracks.extend([piano, drums])
    notes = music.pitch_onset_duration(score)
    np.testing.assert_allclose(notes, [[60, 0, 1], [64, 0, 1], [67, 2, 0.5]])
    fields = ["pitch", "frequency", "onset", "duration", "delta"]
    rows = np.array([[67, 392.0, 2, 0.5, 2], [60, 261.6, 0, 1, 0]])
    np.testing.assert_allclose(music.notes_from_fields(rows, fields), [[60, 0, 1], [67, 2, 0.5]])


def test_gaussian_overlap_by_hand():
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    assert music.gaussian_overlap(3.0, 1.5, 3.0, 1.5) == pytest.approx(1.0)
    # equal sd 1, means 2 apart: the crossing is midway -> 2 * Phi(-1) = 0.317311
    assert music.gaussian_overlap(0, 1, 2, 1) == pytest.approx(2 * phi(-1), abs=1e-9)
    assert music.gaussian_overlap(0, 1, 2, 1) == pytest.approx(0.317311, abs=1e-6)
    # N(0,1) vs N(0,2): densities cross at x^2 (1/2 - 1/8) = ln 2 -> x = 1.359556; inside the
    # wide one is lower (2 Phi(x/2) - 1), outside the narrow one (2 (1 - Phi(x)))
    x = math.sqrt(math.log(2) / 0.375)
    expected = (2 * phi(x / 2) - 1) + 2 * (1 - phi(x))
    assert music.gaussian_overlap(0, 1, 0, 2) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.67732, abs=1e-4)
    assert music.gaussian_overlap(60, 0, 72, 0) == pytest.approx(0.0, abs=1e-12)


def test_overlap_area_and_mgeval_by_hand():
    # one point each, bandwidth 1, 2 apart: two unit Gaussians -> 2 Phi(-1) = 0.317311
    assert music.overlap_area([0.0], [2.0], bandwidth=1.0) == pytest.approx(0.317311, abs=1e-4)
    assert music.overlap_area([0.0, 1.0], [0.0, 1.0]) == pytest.approx(1.0, abs=1e-4)
    assert music.overlap_area([0.0], [100.0], bandwidth=1.0) == pytest.approx(0.0, abs=1e-6)
    # a single value borrows the other sample's Scott bandwidth: [0, 2] has std sqrt(2) and
    # n = 2 -> h = sqrt(2) * 2^(-1/5); the single value 1 sits between them, overlap > 0.5
    h = math.sqrt(2) * 2 ** (-1 / 5)
    assert music.scott_bandwidth([0.0, 2.0]) == pytest.approx(h)
    assert music.overlap_area([1.0], [0.0, 2.0]) > 0.5
    # reference {0, 1}: intra distance 1; generated {0, 1}: inter distances 0, 1, 1, 0
    res = music.mgeval(np.array([0.0, 1.0]), np.array([0.0, 1.0, np.nan]))
    assert res["intra_reference_mean"] == pytest.approx(1.0)
    assert res["inter_mean"] == pytest.approx(0.5)
    far = music.mgeval(np.array([10.0, 11.0, 12.0]), np.array([0.0, 1.0, 2.0]))
    near = music.mgeval(np.array([0.5, 1.5, 2.5]), np.array([0.0, 1.0, 2.0]))
    assert far["oa"] < 0.01 < near["oa"]


def _alternating(n_beats: int) -> np.ndarray:
    return np.array([[60 + 2 * (b % 2), b, 1] for b in range(n_beats)], dtype=np.float64)


def test_framewise_self_similarity_and_consistency_by_hand():
    # steady: 24 beats alternating C/D -> frames at beats 0, 8, 16 all N(61, 1): overlaps 1, 1
    steady = _alternating(24)
    # jump: C on beats 0-7, silence, C5 on beats 16-23 -> frames [0,16) all 60, [8,24) and
    # [16,32) all 72: overlaps 0 (60 vs 72) and 1 (72 vs 72)
    jump = np.array(
        [[60, b, 1] for b in range(8)] + [[72, b, 1] for b in range(16, 24)], dtype=np.float64
    )
    fss = music.framewise_self_similarity([steady, jump])
    assert fss["pitch"]["pairs"] == 4
    assert fss["pitch"]["mean"] == pytest.approx(0.75)  # (1 + 1 + 0 + 1) / 4
    assert fss["pitch"]["variance"] == pytest.approx(0.1875)  # 3 * 0.0625 + 0.5625, / 4
    assert fss["duration"]["mean"] == pytest.approx(1.0)
    # generated = [jump]: mean 0.5, variance 0.25; reference = both: 0.75, 0.1875
    cv = music.consistency_variance([jump], [steady, jump])
    assert cv["pitch"]["consistency"] == pytest.approx(1 - 0.25 / 0.75)
    assert cv["pitch"]["variance"] == pytest.approx(1 - 0.0625 / 0.1875)
    assert math.isnan(cv["duration"]["variance"])  # reference variance 0: undefined


def test_empty_piece_is_nan_not_an_error():
    empty = np.zeros((0, 3))
    metrics = music.piece_metrics(empty)
    assert math.isnan(metrics["pitch_range"]) and math.isnan(metrics["polyphony"])
    assert metrics["n_pitches_used"] == 0
