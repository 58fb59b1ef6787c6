"""The multi-head LSTM's chained heads (``chain_heads``): each head reads only what is drawn
before it, and the sampler hands each head the values it drew.

The corpus is built so that only a chain can learn it: each note's gap and pitch are random
given the past, but the pitch is low exactly when the note starts with the one before it (gap
0), and each pitch has its own duration (low notes held, high ones short). One state for all
heads can only learn the marginals; the chain has to see the drawn gap and pitch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midiforge.data.encode import FIELD, NOTE_FIELDS
from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.sampling.autoregressive import sample_notes

from ..tiny_note_lstm import TINY, trained

LOW, HIGH = (40, 44, 47), (67, 71, 74)  # the pitches under and over middle C the corpus uses
HELD = {40: 2.0, 44: 1.5, 47: 1.0, 67: 0.5, 71: 0.25, 74: 0.75}  # each pitch's duration (beats)


def _corpus(n: int, length: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, length, len(NOTE_FIELDS)), np.float32)
    chord = rng.random((n, length)) < 0.5  # starts with the note before it
    rows[..., FIELD["delta"]] = np.where(chord, 0.0, 1.0)
    rows[..., FIELD["onset"]] = np.cumsum(rows[..., FIELD["delta"]], axis=1)
    rows[..., FIELD["pitch"]] = np.where(chord, rng.choice(LOW, (n, length)),
                                         rng.choice(HIGH, (n, length)))  # fmt: skip
    rows[..., FIELD["duration"]] = np.vectorize(HELD.get)(rows[..., FIELD["pitch"]])
    rows[..., FIELD["velocity"]] = 80.0
    return torch.from_numpy(rows)


def _follows_the_corpus(rows: np.ndarray) -> float:
    """Share of sampled notes whose pitch agrees with their gap and duration with their pitch."""
    chord = rows[:, FIELD["delta"]] == 0.0
    pitch_ok = np.where(chord, np.isin(rows[:, FIELD["pitch"]], LOW),
                        np.isin(rows[:, FIELD["pitch"]], HIGH))  # fmt: skip
    held = np.array([HELD.get(int(p), -1.0) for p in rows[:, FIELD["pitch"]]])
    duration_ok = rows[:, FIELD["duration"]] == held
    return float((pitch_ok & duration_ok).mean())


def test_sampled_pitches_and_durations_follow_the_drawn_gap_only_with_the_chain():
    rates = {}
    for chain in (True, False):
        samples = sample_notes(trained(_corpus, chain_heads=chain), n=4, max_notes=64, seed=0)
        rates[chain] = _follows_the_corpus(np.concatenate(samples))
    assert rates[True] >= 0.9, rates
    assert rates[False] <= 0.4, rates  # the marginals alone: about 1 in 6


def test_each_chained_head_reads_only_what_is_drawn_before_it():
    torch.manual_seed(0)
    model = registry.build("lstm-multihead", TINY).eval()
    assert model.config.chain_heads  # new runs chain their heads
    h = torch.randn(2, 5, TINY["d_hidden"])
    gap, other_gap = torch.zeros(2, 5, dtype=torch.long), torch.full((2, 5), 10)
    pitch, other_pitch = torch.full((2, 5), 40), torch.full((2, 5), 70)
    with torch.no_grad():
        base = model.heads(h, None, gap, pitch)
        new_pitch = model.heads(h, None, gap, other_pitch)
        new_gap = model.heads(h, None, other_gap, pitch)
        undrawn = model.heads(h)
    # the gap reads the state alone; the pitch reads the gap, never the pitch it predicts
    for out in (new_pitch, new_gap, undrawn):
        torch.testing.assert_close(out["time"][..., 0, :], base["time"][..., 0, :])
    torch.testing.assert_close(new_pitch["pitch"], base["pitch"])
    assert not torch.allclose(new_gap["pitch"], base["pitch"])
    # the duration and velocity read both
    for out in (new_pitch, new_gap):
        assert not torch.allclose(out["time"][..., 1, :], base["time"][..., 1, :])
        assert not torch.allclose(out["velocity"], base["velocity"])


def test_a_run_saved_before_the_chain_keeps_one_state_for_all_heads():
    old = registry.build("lstm-multihead", {**TINY, "time_head": "classes"}, saved=True)
    assert not old.config.chain_heads and not hasattr(old, "duration_head")
    with pytest.raises(MidiforgeError, match=r"chain_heads: true needs time_head: classes"):
        registry.build("lstm-multihead", {**TINY, "time_head": "median"})
