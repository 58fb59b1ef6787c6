"""Pitch statistics of one piece, after MusPy's definitions (Dong et al., 2020).

Every function reads a note array of pitched notes (see :mod:`midiforge.metrics.music`); drum
hits are never passed here, as MusPy ignores drum tracks for every pitch metric. An empty piece
gives NaN where the statistic is undefined.
"""

from __future__ import annotations

import math

import numpy as np

from midiforge.metrics.music import PITCH

N_PITCHES = 128  # MIDI numbers 0..127
N_PITCH_CLASSES = 12
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor


def pitch_range(notes: np.ndarray) -> float:
    """Highest minus lowest pitch, in semitones (NaN for an empty piece)."""
    if len(notes) == 0:
        return math.nan
    return float(notes[:, PITCH].max() - notes[:, PITCH].min())


def n_pitches_used(notes: np.ndarray) -> int:
    """How many distinct MIDI pitches occur."""
    return len(np.unique(notes[:, PITCH]))


def n_pitch_classes_used(notes: np.ndarray) -> int:
    """How many distinct pitch classes (pitch mod 12) occur."""
    return len(np.unique(notes[:, PITCH].astype(int) % N_PITCH_CLASSES))


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Share of notes in each pitch class C..B, shape ``(12,)`` summing to 1 (zeros if empty)."""
    counts = np.bincount(notes[:, PITCH].astype(int) % N_PITCH_CLASSES, minlength=12)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def pitch_class_entropy(notes: np.ndarray) -> float:
    """Shannon entropy of the pitch-class histogram, in bits (0 = one pitch class, log2 12 max)."""
    if len(notes) == 0:
        return math.nan
    return _entropy_bits(np.bincount(notes[:, PITCH].astype(int) % N_PITCH_CLASSES))


def pitch_entropy(notes: np.ndarray) -> float:
    """Shannon entropy of the histogram of the 128 MIDI pitches, in bits (NaN if empty).

    MusPy's ``pitch_entropy``: −Σᵢ P(pitch = i) log₂ P(pitch = i). Unlike the pitch-class
    entropy it tells octaves apart: C4 and C5 are two pitches, one pitch class.
    """
    if len(notes) == 0:
        return math.nan
    return _entropy_bits(np.bincount(notes[:, PITCH].astype(int), minlength=N_PITCHES))


def scale_consistency(notes: np.ndarray) -> float:
    """Largest share of notes inside one of the 24 major and natural-minor scales."""
    if len(notes) == 0:
        return math.nan
    hist = pitch_class_histogram(notes)
    best = 0.0
    for tonic in range(N_PITCH_CLASSES):
        for scale in (MAJOR_SCALE, MINOR_SCALE):
            best = max(best, float(hist[[(tonic + s) % 12 for s in scale]].sum()))
    return best
