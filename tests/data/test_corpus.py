"""Cleaning a score (:func:`midiforge.data.corpus.clean_score`): the meter rule on real files."""

from __future__ import annotations

import pytest

from midiforge.data.corpus import clean_score
from midiforge.data.encode import score_to_ids
from midiforge.data.prepare import tokenizer_for
from midiforge.io.midi import load_midi

OPTIONS = dict(programs=None, drums=True, tracks="all", max_note_beats=None, max_gap_beats=None)


@pytest.mark.parametrize(
    ("file", "dropped"),
    [("pop909/014/014.mid", 1), ("pop909/022/022.mid", 1), ("nottingham/ashover11.mid", 0)],
)
def test_one_beat_meters_are_read_as_the_meter_before(datasets, file, dropped):
    # 014 declares 1/4 throughout; 022 declares 4/4 and then 1/4 at the same tick; the folk tune
    # is in 6/8 and keeps it
    score = load_midi(str(datasets / file))
    cleaned, stats = clean_score(score, **OPTIONS)
    assert stats.meters_dropped == dropped
    kept = [(ts.numerator, ts.denominator) for ts in cleaned.time_signatures]
    assert all(numerator > 1 for numerator, _ in kept)
    if dropped:
        assert kept == [(4, 4)]
    else:
        assert kept == [(ts.numerator, ts.denominator) for ts in score.time_signatures]
    # the tokens then hold a bar line every four beats, not every beat
    tok = tokenizer_for("remi", "all")
    bars = sum(tok[i].startswith("Bar") for i in score_to_ids(tok, cleaned))
    beats = cleaned.end() / cleaned.ticks_per_quarter
    per_bar = 4 if dropped else 3
    assert abs(bars - beats / per_bar) <= 2
