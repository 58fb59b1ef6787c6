"""What is measured per piece: the table of scalar metrics, drum metrics and histogram features.

Each entry maps a :class:`~midiforge.metrics.music.Piece` to a number (or a vector), so a metric
that needs the bar length or the drum hits finds them on the piece. The evaluation reports every
entry per file and compares the sets entry by entry (:mod:`midiforge.metrics.overlap`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from midiforge.metrics import drums, pitch, rhythm
from midiforge.metrics.music import Piece

PieceMetric = Callable[[Piece], float]


def _of_notes(fn: Callable[[np.ndarray], float]) -> PieceMetric:
    """A metric of the pitched notes alone."""
    return lambda piece: float(fn(piece.notes))


def _mean_ioi(piece: Piece) -> float:
    iois = rhythm.inter_onset_intervals(piece.notes)
    return float(iois.mean()) if len(iois) else math.nan


def _mean_duration(piece: Piece) -> float:
    return float(rhythm.durations(piece.notes).mean()) if len(piece.notes) else math.nan


SCALAR_METRICS: dict[str, PieceMetric] = {
    "pitch_range": _of_notes(pitch.pitch_range),
    "n_pitches_used": _of_notes(pitch.n_pitches_used),
    "n_pitch_classes_used": _of_notes(pitch.n_pitch_classes_used),
    "pitch_entropy": _of_notes(pitch.pitch_entropy),
    "pitch_class_entropy": _of_notes(pitch.pitch_class_entropy),
    "scale_consistency": _of_notes(pitch.scale_consistency),
    "polyphony": _of_notes(rhythm.polyphony),
    "polyphony_rate": _of_notes(rhythm.polyphony_rate),
    "empty_beat_rate": _of_notes(rhythm.empty_beat_rate),
    "empty_measure_rate": lambda p: rhythm.empty_measure_rate(p.notes, p.beats_per_bar),
    "groove_consistency": lambda p: rhythm.groove_consistency(
        p.notes, beats_per_bar=p.beats_per_bar
    ),
    "note_density": _of_notes(rhythm.note_density),
    "mean_ioi": _mean_ioi,
    "mean_duration": _mean_duration,
}

# Metrics of the drum hits: reported for a piece only when it has some.
DRUM_METRICS: dict[str, PieceMetric] = {
    "drum_pattern_consistency": lambda p: drums.drum_pattern_consistency(p.drums),
}

# Vector features compared between sets (MGEval's histogram features).
VECTOR_FEATURES: dict[str, Callable[[Piece], np.ndarray]] = {
    "pitch_class_histogram": lambda p: pitch.pitch_class_histogram(p.notes),
    "ioi_histogram": lambda p: rhythm.length_histogram(rhythm.inter_onset_intervals(p.notes)),
    "duration_histogram": lambda p: rhythm.length_histogram(rhythm.durations(p.notes)),
}


def piece_metrics(piece: Piece) -> dict[str, float]:
    """Every scalar metric of one piece by name, the drum metrics too when it has drums."""
    table = {**SCALAR_METRICS, **(DRUM_METRICS if len(piece.drums) else {})}
    return {name: float(fn(piece)) for name, fn in table.items()}


def set_features(pieces: Sequence[Piece]) -> dict[str, np.ndarray]:
    """Every metric and vector feature per piece: name → ``(n_pieces, ...)`` array.

    A drum metric is NaN for a piece without drums (comparisons drop NaN rows).
    """
    out: dict[str, np.ndarray] = {}
    for name, fn in {**SCALAR_METRICS, **DRUM_METRICS, **VECTOR_FEATURES}.items():
        out[name] = np.array([fn(p) for p in pieces], dtype=np.float64)
    return out
