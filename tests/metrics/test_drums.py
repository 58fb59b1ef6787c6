"""Drum metrics (MusPy's definitions) on hand-made hits and on real drum tracks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import symusic

from midiforge.errors import MidiforgeError
from midiforge.metrics import drums, music


def _hits(onsets) -> np.ndarray:
    return np.array([[36, o, 0.25] for o in onsets], dtype=np.float64)


def test_drum_in_pattern_rate_by_hand():
    # beat positions 0, 1/4, 1/2, 1/3, 0.1 (the last on neither grid)
    hits = _hits([0, 1.25, 2.5, 3 + 1 / 3, 4.1])
    assert drums.drum_in_pattern_rate(hits, "duple") == pytest.approx(3 / 5)  # 0, 1/4, 1/2
    assert drums.drum_in_pattern_rate(hits, "triple") == pytest.approx(2 / 5)  # 0, 1/3
    assert drums.drum_pattern_consistency(hits) == pytest.approx(3 / 5)
    # a triplet groove: 0, 1/3, 2/3 of each beat, plus one 8th off-beat
    triplets = _hits([0, 1 / 3, 2 / 3, 1, 1.5])
    assert drums.drum_in_pattern_rate(triplets, "duple") == pytest.approx(3 / 5)  # 0, 1, 1.5
    assert drums.drum_pattern_consistency(triplets) == pytest.approx(4 / 5)
    # a hit a hair before the beat (tick rounding) is on it; one 1/100 beat off is not
    assert drums.drum_in_pattern_rate(_hits([1.9995, 2.01]), "duple") == pytest.approx(0.5)
    assert math.isnan(drums.drum_pattern_consistency(np.zeros((0, 3))))
    with pytest.raises(MidiforgeError, match="meter"):
        drums.drum_in_pattern_rate(hits, "waltz")


@pytest.mark.parametrize("name", ["Funkytown.mid", "All The Small Things.mid"])
def test_real_drum_tracks_match_musPy_tick_test(datasets, name):
    # MusPy: a hit is in the duple pattern when tick % resolution is a multiple of
    # resolution / 4, in the triple one when a multiple of resolution / 3 (both resolutions
    # here, 192 and 240, divide by 12, so MusPy's test is exact)
    score = symusic.Score(str(datasets / "robustness" / "MIDIs_multitrack" / name))
    tpq = score.ticks_per_quarter
    ticks = np.concatenate([t.notes.numpy()["time"] for t in score.tracks if t.is_drum])
    hits = music.piece_from_score(score).drums
    assert len(hits) == len(ticks) > 100
    duple, triple = np.mean(ticks % (tpq // 4) == 0), np.mean(ticks % (tpq // 3) == 0)
    assert drums.drum_in_pattern_rate(hits, "duple") == pytest.approx(duple, abs=1e-12)
    assert drums.drum_in_pattern_rate(hits, "triple") == pytest.approx(triple, abs=1e-12)
    assert drums.drum_pattern_consistency(hits) == pytest.approx(max(duple, triple), abs=1e-12)
