"""The note LSTM's beat-position input (``beat_position``): where in its beat each note starts.

The learning test's corpus is built so that only that input makes it easy: each gap is a
random 16th multiple, and each note's pitch says whether it falls on a beat (low) or between
beats (high). Without the input the LSTM has to add up the gaps modulo a beat to know; with it,
the place of the note before plus the drawn gap tells it.
"""

from __future__ import annotations

import numpy as np
import torch

from midiforge.data.encode import FIELD, NOTE_FIELDS
from midiforge.models import registry
from midiforge.models.note_lstm import POSITIONS_PER_BEAT, beat_positions
from midiforge.sampling.autoregressive import sample_notes

from ..tiny_note_lstm import TINY, trained

ON_BEAT, BETWEEN = 48, 72  # the pitch of a note on a beat, and of one between beats
GAPS = (0.25, 0.5, 0.75, 1.25)


def test_positions_are_the_24th_of_the_beat_or_off_the_grid():
    onsets = torch.tensor([0.0, 0.25, 1 / 3, 1.5, 7.75, 2 + 23 / 24, 3.999999, 0.1, 5.51])
    off = POSITIONS_PER_BEAT
    assert beat_positions(onsets).tolist() == [0, 6, 8, 12, 18, 23, 0, off, off]


def _notes(onsets: np.ndarray) -> torch.Tensor:
    rows = np.zeros((1, len(onsets), len(NOTE_FIELDS)), np.float32)
    rows[0, :, FIELD["onset"]] = onsets
    rows[0, 1:, FIELD["delta"]] = np.diff(onsets)
    rows[0, :, FIELD["pitch"]] = 60
    rows[0, :, FIELD["duration"]] = 0.25
    rows[0, :, FIELD["velocity"]] = 80
    return torch.from_numpy(rows)


def test_the_input_reads_the_place_in_the_beat_not_the_beat_count():
    torch.manual_seed(0)
    onsets = np.array([0.0, 0.5, 0.75, 1.0, 2.25])
    for position in (True, False):
        model = registry.build("lstm-multihead", {**TINY, "beat_position": position}).eval()
        with torch.no_grad():
            base = model(_notes(onsets))[0]["pitch"]
            whole = model(_notes(onsets + 3.0))[0]["pitch"]
            half = model(_notes(onsets + 0.5))[0]["pitch"]
        torch.testing.assert_close(whole, base)
        assert (not torch.allclose(half, base)) == position


def test_a_saved_run_without_the_field_reads_no_position():
    old = registry.build("lstm-multihead", {**TINY, "time_head": "classes"}, saved=True)
    assert not old.config.beat_position and not hasattr(old, "position_embed")


def _corpus(n: int, length: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, length, len(NOTE_FIELDS)), np.float32)
    rows[..., FIELD["delta"]] = rng.choice(GAPS, (n, length))
    rows[..., FIELD["onset"]] = np.cumsum(rows[..., FIELD["delta"]], axis=1)
    on_beat = rows[..., FIELD["onset"]] % 1 == 0
    rows[..., FIELD["pitch"]] = np.where(on_beat, ON_BEAT, BETWEEN)
    rows[..., FIELD["duration"]] = 0.25
    rows[..., FIELD["velocity"]] = 80.0
    return torch.from_numpy(rows)


def _in_place(rows: np.ndarray) -> float:
    """Share of sampled notes whose pitch says rightly whether they fall on a beat."""
    place = rows[:, FIELD["onset"]] % 1
    on_beat = np.isclose(place, 0) | np.isclose(place, 1)
    return float((rows[:, FIELD["pitch"]] == np.where(on_beat, ON_BEAT, BETWEEN)).mean())


def test_sampled_notes_know_their_place_in_the_beat_only_with_the_input():
    rates = {}
    for position in (True, False):
        samples = sample_notes(trained(_corpus, beat_position=position), n=4, max_notes=64, seed=0)
        rates[position] = _in_place(np.concatenate(samples))
    assert rates[True] >= 0.9, rates
    assert rates[False] <= 0.75, rates  # it has to count the gaps: about 0.6
