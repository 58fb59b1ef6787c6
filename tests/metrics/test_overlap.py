"""MGEval's overlapping area under both integration conventions, against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from midiforge.errors import MidiforgeError
from midiforge.metrics import overlap


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_overlap_area_full_line_by_hand():
    # one point each, bandwidth 1, 2 apart: two unit Gaussians crossing at 1 -> 2 Phi(-1)
    full = overlap.overlap_area([0.0], [2.0], bandwidth=1.0, bounds="full")
    assert full == pytest.approx(2 * phi(-1), abs=1e-5)  # a 2001-point trapezoid grid
    assert full == pytest.approx(0.317311, abs=1e-5)
    assert overlap.overlap_area([0.0, 1.0], [0.0, 1.0], bounds="full") == pytest.approx(1.0)
    assert overlap.overlap_area([0.0], [100.0], bandwidth=1.0, bounds="full") == pytest.approx(0)


def test_overlap_area_between_min_and_max_by_hand():
    # MGEval's code integrates from min to max of the data: the same Gaussians on [0, 2] give
    # 2 (Phi(2) - Phi(1)) = 0.271810 (the tails past 0 and 2 are cut)
    minmax = overlap.overlap_area([0.0], [2.0], bandwidth=1.0)  # the default
    assert minmax == pytest.approx(2 * (phi(2) - phi(1)), abs=1e-6)
    assert minmax == pytest.approx(0.271810, abs=1e-6)
    # two equal samples {0, 1}: the density 0.5 N(0,1) + 0.5 N(1,1) holds Phi(1) - Phi(0) of
    # its mass in [0, 1]
    same = overlap.overlap_area([0.0, 1.0], [0.0, 1.0], bandwidth=1.0, bounds="minmax")
    assert same == pytest.approx(phi(1) - phi(0), abs=1e-6)
    # every value equal: the interval is empty, the area undefined
    assert math.isnan(overlap.overlap_area([3.0, 3.0], [3.0]))
    assert overlap.overlap_area([3.0, 3.0], [3.0], bounds="full") == pytest.approx(1.0)
    with pytest.raises(MidiforgeError, match="whole"):
        overlap.overlap_area([0.0], [1.0], bounds="whole")


def test_scott_bandwidth_and_borrowing():
    # a single value borrows the other sample's Scott bandwidth: [0, 2] has std sqrt(2) and
    # n = 2 -> h = sqrt(2) * 2^(-1/5); the single value 1 sits between them, overlap > 0.5
    h = math.sqrt(2) * 2 ** (-1 / 5)
    assert overlap.scott_bandwidth([0.0, 2.0]) == pytest.approx(h)
    assert overlap.overlap_area([1.0], [0.0, 2.0], bounds="full") > 0.5


def test_mgeval_by_hand():
    # reference {0, 1}: intra distance 1; generated {0, 1}: inter distances 0, 1, 1, 0
    res = overlap.mgeval(np.array([0.0, 1.0]), np.array([0.0, 1.0, np.nan]))
    assert res["intra_reference_mean"] == pytest.approx(1.0)
    assert res["inter_mean"] == pytest.approx(0.5)
    for bounds in overlap.OVERLAP_BOUNDS:
        far = overlap.mgeval(np.array([10.0, 11.0, 12.0]), np.array([0.0, 1.0, 2.0]), bounds)
        near = overlap.mgeval(np.array([0.5, 1.5, 2.5]), np.array([0.0, 1.0, 2.0]), bounds)
        assert far["oa"] < 0.01 < near["oa"]
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    np.testing.assert_allclose(overlap.pairwise_distances(points), [5, 1, 3 * 2**0.5])
