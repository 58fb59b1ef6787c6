"""Mittal et al.'s framewise self-similarity and Consistency/Variance, worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from midiforge.errors import MidiforgeError
from midiforge.metrics import self_similarity as ss


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _alternating(n_beats: int) -> np.ndarray:
    return np.array([[60 + 2 * (b % 2), b, 1] for b in range(n_beats)], dtype=np.float64)


# steady: 24 beats of quarters alternating C/D: 6 bars of 4/4
STEADY = _alternating(24)
# jump: C on beats 0-7, silence, C5 on beats 16-23: also 6 bars
JUMP = np.array([[60, b, 1] for b in range(8)] + [[72, b, 1] for b in range(16, 24)], np.float64)


def test_gaussian_overlap_by_hand():
    assert ss.gaussian_overlap(3.0, 1.5, 3.0, 1.5) == pytest.approx(1.0)
    # equal sd 1, means 2 apart: the crossing is midway -> 2 * Phi(-1) = 0.317311
    assert ss.gaussian_overlap(0, 1, 2, 1) == pytest.approx(2 * phi(-1), abs=1e-9)
    # N(0,1) vs N(0,2): densities cross at x^2 (1/2 - 1/8) = ln 2 -> x = 1.359556; inside the
    # wide one is lower (2 Phi(x/2) - 1), outside the narrow one (2 (1 - Phi(x)))
    x = math.sqrt(math.log(2) / 0.375)
    expected = (2 * phi(x / 2) - 1) + 2 * (1 - phi(x))
    assert ss.gaussian_overlap(0, 1, 0, 2) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.67732, abs=1e-4)
    assert ss.gaussian_overlap(60, 0, 72, 0) == pytest.approx(0.0, abs=1e-12)


def test_frames_stay_inside_the_piece():
    # 6 bars: frames of 4 bars at bars 0 and 2 (bar 4 would run to bar 8)
    np.testing.assert_array_equal(ss.frame_starts(STEADY), [0, 8])
    # one more long note on beat 24 (to 28): 7 bars, still frames at bars 0 and 2 only; a frame
    # from beat 24 would hold that single note and compare N(60, 0) with N(61, 1)
    stub = np.concatenate([STEADY, [[60, 24, 4]]])
    np.testing.assert_array_equal(ss.frame_starts(stub), [0, 8])
    assert ss.frame_overlaps(stub) == {"pitch": [1.0], "duration": [1.0]}
    # 8 bars exactly: frames at bars 0, 2, 4
    np.testing.assert_array_equal(ss.frame_starts(_alternating(32)), [0, 8, 16])
    assert len(ss.frame_starts(_alternating(12))) == 0  # 3 bars: no frame
    # 15 beats end inside bar 4, which counts as the piece's: one frame, no pair
    np.testing.assert_array_equal(ss.frame_starts(_alternating(15)), [0])
    # in 3/4 the 24 beats are 8 bars: frames at beats 0, 6, 12 (bars 0, 2, 4)
    np.testing.assert_array_equal(ss.frame_starts(STEADY, beats_per_bar=3), [0, 6, 12])
    assert len(ss.frame_overlaps(STEADY, beats_per_bar=3)["pitch"]) == 2


def test_framewise_self_similarity_and_consistency_by_hand():
    # steady: frames [0,16) and [8,24) both N(61, 1): overlap 1
    # jump: [0,16) all 60, [8,24) all 72: overlap 0
    fss = ss.framewise_self_similarity([STEADY, JUMP])
    assert fss["pitch"]["pairs"] == 2
    assert fss["pitch"]["mean"] == pytest.approx(0.5)
    assert fss["pitch"]["variance"] == pytest.approx(0.25)
    assert fss["duration"]["mean"] == pytest.approx(1.0)
    # generated [steady, jump]: mean 1/2, variance 1/4; reference [steady, jump, steady]:
    # overlaps 1, 0, 1 -> mean 2/3, variance 2/9
    cv = ss.consistency_variance([STEADY, JUMP], [STEADY, JUMP, STEADY])
    assert cv["pitch"]["consistency"] == pytest.approx(1 - (1 / 6) / (2 / 3))  # 0.75
    assert cv["pitch"]["variance"] == pytest.approx(1 - (1 / 36) / (2 / 9))  # 0.875
    assert math.isnan(cv["duration"]["variance"])  # reference variance 0: undefined
    # bar lengths per piece: in 3/4 the steady piece has 2 pairs, the jump one (frames [0,12),
    # [6,18), [12,24): 60 | 60+72 | 72) two pairs below 1
    per_piece = ss.framewise_self_similarity([STEADY, JUMP], [3.0, 3.0])
    assert per_piece["pitch"]["pairs"] == 4
    assert all(0 < v < 1 for v in ss.frame_overlaps(JUMP, beats_per_bar=3)["pitch"])
    with pytest.raises(MidiforgeError, match="one per piece"):
        ss.framewise_self_similarity([STEADY, JUMP], [3.0])


def test_every_piece_is_read_up_to_max_bars():
    # 16 bars of 4/4: frames at bars 0, 2, ..., 12 (7 frames, 6 pairs) when read whole;
    # up to 8 bars: frames at bars 0, 2, 4 (2 pairs); a jump at bar 12 changes only the former
    long = _alternating(64)
    long[48:, 0] += 12  # bars 12-15 an octave up
    assert len(ss.frame_overlaps(long)["pitch"]) == 6
    assert len(ss.frame_overlaps(long, max_bars=8)["pitch"]) == 2
    np.testing.assert_array_equal(ss.frame_starts(long, max_bars=8), [0, 8, 16])
    whole = ss.framewise_self_similarity([long], max_bars=None)["pitch"]
    capped = ss.framewise_self_similarity([long], max_bars=8)["pitch"]
    assert capped == {"mean": 1.0, "variance": 0.0, "pairs": 2}
    assert whole["pairs"] == 6 and whole["mean"] < 1.0  # the frames overlapping the jump
    # the default reads 32 bars: a 40-bar piece gives the frames of its first 32
    assert len(ss.frame_overlaps(_alternating(160), max_bars=ss.MAX_BARS)["pitch"]) == 14
    assert ss.framewise_self_similarity([_alternating(160)])["pitch"]["pairs"] == 14
