"""Rhythm and texture statistics of one piece on a grid of ``steps_per_beat`` steps per beat.

Definitions follow MusPy (Dong et al., 2020) and, for the groove, Wu & Yang (2020). Bars start
at beat 0 and last ``beats_per_bar`` beats (a piece's own meter: 3 for 6/8 and 3/4), so a tune
with a pickup must encode the pickup as the end of a first bar, as MIDI files do. A piece lasts
from beat 0 to its last note's end. Every function reads pitched notes; drums have their own
module (:mod:`midiforge.metrics.drums`).
"""

from __future__ import annotations

import math

import numpy as np

from midiforge.metrics.music import (
    BEATS_PER_BAR,
    DURATION,
    ONSET,
    PITCH,
    STEPS_PER_BEAT,
    end_beat,
)

# Duration / inter-onset classes for the histograms: 1/8 beat (32nd note) .. 8 beats (two bars),
# one class per power of two; a value goes to the nearest class in log2 space.
LENGTH_CLASSES_BEATS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
GRID_DECIMALS = 6  # beats·steps are snapped to this many decimals before rounding to a step


def grid_steps(beats: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> np.ndarray:
    """Nearest grid step of each time in beats, ties to even (as ``round`` on exact ticks).

    The product is snapped to ``GRID_DECIMALS`` decimals first: a time exactly half a step past
    a line, stored as ticks / resolution, can land an ulp either side of the half, and the tie
    would then be broken by floating-point noise instead of the rule.
    """
    scaled = np.round(np.asarray(beats, dtype=np.float64) * steps_per_beat, GRID_DECIMALS)
    return np.round(scaled).astype(int)


def steps_in_bar(beats_per_bar: float, steps_per_beat: int = STEPS_PER_BEAT) -> int:
    """Grid steps in one bar: 16 for 4/4, 12 for 6/8 and 3/4, 14 for 7/8 (at 16th steps)."""
    return max(1, round(beats_per_bar * steps_per_beat))


def piano_roll(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> np.ndarray:
    """Boolean roll ``(T, 128)``: step t is beats [t/spb, (t+1)/spb); a note lasts ≥ 1 step."""
    if len(notes) == 0:
        return np.zeros((0, 128), dtype=bool)
    start = grid_steps(notes[:, ONSET], steps_per_beat)
    stop = grid_steps(notes[:, ONSET] + notes[:, DURATION], steps_per_beat)
    stop = np.maximum(stop, start + 1)
    roll = np.zeros((int(stop.max()), 128), dtype=bool)
    for pitch, a, b in zip(notes[:, PITCH].astype(int), start, stop):
        roll[a:b, pitch] = True
    return roll


def polyphony(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> float:
    """Mean number of sounding pitches over the grid steps where at least one sounds."""
    active = piano_roll(notes, steps_per_beat).sum(axis=1)  # (T,)
    active = active[active > 0]
    return float(active.mean()) if len(active) else math.nan


def polyphony_rate(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> float:
    """Share of all grid steps (silent ones included) where more than one pitch sounds."""
    active = piano_roll(notes, steps_per_beat).sum(axis=1)  # (T,)
    return float((active > 1).mean()) if len(active) else math.nan


def _silent_span_rate(notes: np.ndarray, span_steps: int, steps_per_beat: int) -> float:
    """Share of consecutive spans of ``span_steps`` steps, from 0 to the end, with no sound."""
    sounding = piano_roll(notes, steps_per_beat).any(axis=1)  # (T,)
    if len(sounding) == 0:
        return math.nan
    n_spans = -(-len(sounding) // span_steps)
    padded = np.zeros(n_spans * span_steps, dtype=bool)
    padded[: len(sounding)] = sounding
    return float((~padded.reshape(n_spans, span_steps).any(axis=1)).mean())


def empty_beat_rate(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> float:
    """Share of the piece's beats (up to its last note's end) during which nothing sounds."""
    return _silent_span_rate(notes, steps_per_beat, steps_per_beat)


def empty_measure_rate(
    notes: np.ndarray,
    beats_per_bar: float = BEATS_PER_BAR,
    steps_per_beat: int = STEPS_PER_BEAT,
) -> float:
    """Share of the piece's bars (up to its last note's end) during which nothing sounds.

    MusPy's ``empty_measure_rate``: #(empty measures) / #(measures). A note sounds over
    [onset, end), so a note ending on a barline leaves the next bar empty; MusPy's code counts
    the bar of the end tick too and one bar past the end, which this does not. NaN if empty.
    """
    return _silent_span_rate(notes, steps_in_bar(beats_per_bar, steps_per_beat), steps_per_beat)


def groove_consistency(
    notes: np.ndarray,
    steps_per_beat: int = STEPS_PER_BEAT,
    beats_per_bar: float = BEATS_PER_BAR,
) -> float:
    """1 − mean Hamming distance between consecutive bars' onset patterns, per bar step.

    Wu & Yang (2020), MusPy's ``groove_consistency``: a bar's groove is the binary vector of
    grid steps holding an onset; two bars with the same rhythm score 1. Bars are the piece's
    own (``beats_per_bar``: a 6/8 jig compared in 4-beat windows would straddle its bars). NaN
    when the piece is shorter than two bars.
    """
    if len(notes) == 0:
        return math.nan
    steps_per_bar = steps_in_bar(beats_per_bar, steps_per_beat)
    onset_steps = grid_steps(notes[:, ONSET], steps_per_beat)
    end_steps = math.ceil(round(end_beat(notes) * steps_per_beat, GRID_DECIMALS))
    total_steps = max(end_steps, int(onset_steps.max()) + 1)
    n_bars = -(-total_steps // steps_per_bar)
    if n_bars < 2:
        return math.nan
    grooves = np.zeros(n_bars * steps_per_bar, dtype=bool)
    grooves[onset_steps] = True
    grooves = grooves.reshape(n_bars, steps_per_bar)  # (bars, steps per bar)
    hamming = (grooves[1:] != grooves[:-1]).sum(axis=1) / steps_per_bar  # (bars - 1,)
    return float(1.0 - hamming.mean())


def note_density(notes: np.ndarray) -> float:
    """Notes per beat over the piece's length (start to the last note's end)."""
    length = end_beat(notes)
    return len(notes) / length if length > 0 else math.nan


def inter_onset_intervals(notes: np.ndarray) -> np.ndarray:
    """Beats between successive distinct onsets (a chord is one onset), shape ``(k,)``."""
    return np.diff(np.unique(notes[:, ONSET]))


def durations(notes: np.ndarray) -> np.ndarray:
    """Note durations in beats, shape ``(n,)``."""
    return notes[:, DURATION].copy()


def length_histogram(values: np.ndarray) -> np.ndarray:
    """Share of values in each of ``LENGTH_CLASSES_BEATS`` (nearest class in log2 space)."""
    classes = np.log2(np.asarray(LENGTH_CLASSES_BEATS))
    values = np.asarray(values, dtype=np.float64)
    values = values[values > 0]
    hist = np.zeros(len(classes))
    if len(values) == 0:
        return hist
    index = np.clip(np.round(np.log2(values) - classes[0]), 0, len(classes) - 1).astype(int)
    np.add.at(hist, index, 1.0)
    return hist / hist.sum()
