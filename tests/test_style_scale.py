"""How many classes outside their scale real folk tunes use, and a sample held to that."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from midiforge.data import encode
from midiforge.data.corpora import with_part_programs
from midiforge.pitches import MODES
from midiforge.schema import FIELD
from midiforge.style_scale import (
    MAX_OUTSIDE,
    fit_style_accidentals,
    keep_accidentals,
    outside_classes,
    style_accidentals,
)

FOLK, EVERY = "folk", "*"


def tunes(datasets: Path, every: int = 10) -> list[np.ndarray]:
    """Note rows of every ``every``-th Nottingham tune, melody and chords."""
    paths = sorted((datasets / "nottingham").glob("*.mid"))[::every]
    return [encode.notes_from_score(with_part_programs(Score(str(p)), "nottingham")) for p in paths]


def _outside(notes: np.ndarray) -> set[int]:
    pitched = notes[notes[:, FIELD["program"]] >= 0, FIELD["pitch"]]
    return {int(c) for c in np.flatnonzero(outside_classes(pitched)[1])}


@pytest.fixture(scope="module")
def folk(datasets):
    return tunes(datasets)


def test_folk_tunes_mostly_keep_to_their_scale(folk):
    table = fit_style_accidentals(folk, [FOLK] * len(folk), EVERY)
    counts = style_accidentals(table, FOLK, EVERY)
    assert len(counts) == MAX_OUTSIDE + 1 and sum(counts) == len(folk)
    assert counts[0] + counts[1] >= 0.6 * len(folk)  # most use at most one outside class
    assert sum(counts[4:]) <= 0.2 * len(folk)
    assert style_accidentals(table, "jazz", EVERY) == counts  # no table of its own: the corpus'
    assert style_accidentals({}, FOLK, EVERY) == []  # a run saved before the table


def test_strays_move_onto_the_scale_and_the_tunes_own_accidentals_stay(folk):
    """A real tune with an accidental of its own, and denoising's strays added: every note a
    semitone off onto other outside classes. Held to the tune's own number of outside classes,
    the strays move back a semitone onto the scale and the tune's accidentals stay."""
    tune = next(t for t in folk if len(_outside(t)) == 1 and len(t) > 100)
    own = _outside(tune)
    pitched = tune[tune[:, FIELD["program"]] >= 0, FIELD["pitch"]]
    scale, _ = outside_classes(pitched)
    scale_classes = {(scale + step) % 12 for step in MODES["major"]}
    rng = np.random.default_rng(0)
    faulty = tune.copy()
    candidates = np.flatnonzero(
        np.isin(faulty[:, FIELD["pitch"]] % 12, list(scale_classes))
        & (faulty[:, FIELD["program"]] >= 0)
    )
    chosen = rng.choice(candidates, size=len(candidates) // 25, replace=False)
    for i in chosen:  # a semitone off, onto a class outside the scale that the tune lacks
        for step in (1, -1):
            if (faulty[i, FIELD["pitch"]] + step) % 12 not in scale_classes | own:
                faulty[i, FIELD["pitch"]] += step
                break
    assert len(_outside(faulty)) > len(own)
    first = 4
    out = keep_accidentals(faulty, len(own), first)
    assert np.array_equal(out[:first], faulty[:first])  # the primer is kept
    assert _outside(out[first:]) <= own
    moved = np.flatnonzero(out[:, FIELD["pitch"]] != faulty[:, FIELD["pitch"]])
    strays = np.flatnonzero(faulty[:, FIELD["pitch"]] != tune[:, FIELD["pitch"]])
    assert set(moved) <= set(strays) and len(moved) >= 0.9 * len(strays[strays >= first])
    assert np.all(np.abs(out[moved, FIELD["pitch"]] - faulty[moved, FIELD["pitch"]]) == 1)
    back = out[moved, FIELD["pitch"]] == tune[moved, FIELD["pitch"]]
    assert back.mean() >= 0.5  # half the time the neighbour it came from
    hz = 440.0 * 2.0 ** ((out[moved, FIELD["pitch"]] - 69) / 12)
    assert np.allclose(out[moved, FIELD["frequency"]], hz, rtol=1e-4)
    assert np.array_equal(keep_accidentals(faulty, MAX_OUTSIDE, first), faulty)  # no limit
