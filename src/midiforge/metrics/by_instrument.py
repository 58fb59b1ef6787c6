"""Pieces split by instrument class, and which metrics each class is measured with.

A band piece is judged as a whole (every pitched note together, as the aggregate does) and
part by part: do the generated basses move like the reference's basses, do the generated drums
keep their grid like the reference's. A class is a General MIDI family
(:func:`midiforge.instruments.family_of`: Piano, Guitar, Bass, Strings, ...), so the eight
guitar programs are one class: a reference and a generated set share it even when every song
picks its own guitar. Drums are their own class (``"Drums"``).

A drum "pitch" names an instrument, not a pitch, so the drum class skips the pitched-only
metrics (pitch range and entropies, scale consistency, the pitch-class histogram) and the ones
that read durations (polyphony, empty beats and bars, mean duration, the duration histogram:
a drum hit's length is whatever the sequencer wrote). It keeps what a drum track is made of,
its onsets: :func:`~midiforge.metrics.drums.drum_pattern_consistency` (MusPy's definition),
groove consistency, note density and the inter-onset intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from midiforge.instruments import DRUMS, GM_FAMILIES, family_of
from midiforge.metrics.features import DRUM_METRICS, SCALAR_METRICS, VECTOR_FEATURES
from midiforge.metrics.music import Piece

DRUM_CLASS = family_of(DRUMS)  # "Drums"
CLASS_ORDER = (*GM_FAMILIES, DRUM_CLASS)  # how the report lists them
DRUM_CLASS_METRICS = (
    "drum_pattern_consistency",
    "groove_consistency",
    "note_density",
    "mean_ioi",
    "ioi_histogram",
)
PITCHED_CLASS_METRICS = (*SCALAR_METRICS, *VECTOR_FEATURES)  # every metric of pitched notes
_TABLE = {**SCALAR_METRICS, **DRUM_METRICS, **VECTOR_FEATURES}


def class_metrics(name: str) -> tuple[str, ...]:
    """The metrics a class is measured with: the drum set for drums, else the pitched set."""
    return DRUM_CLASS_METRICS if name == DRUM_CLASS else PITCHED_CLASS_METRICS


def class_pieces(piece: Piece) -> dict[str, Piece]:
    """The piece's notes per instrument class, in :data:`CLASS_ORDER`; absent classes left out.

    A pitched class is a Piece of that family's notes (no drums); the drum class is a Piece
    whose notes *and* drums are the drum hits, so the onset metrics and the drum metric both
    read them. Every part keeps the piece's bar length.
    """
    programs = piece.programs if len(piece.programs) == len(piece.notes) else None
    if programs is None:  # a source without programs: every note is MIDI's default piano
        programs = np.zeros(len(piece.notes), np.int64)
    families = np.array([family_of(int(p)) for p in programs], dtype=object)
    parts: dict[str, Piece] = {}
    for name in GM_FAMILIES:
        rows = families == name
        if rows.any():
            parts[name] = Piece(
                piece.notes[rows], beats_per_bar=piece.beats_per_bar, programs=programs[rows]
            )
    if len(piece.drums):
        parts[DRUM_CLASS] = Piece(piece.drums, piece.drums, piece.beats_per_bar)
    return parts


def class_features(pieces: Sequence[Piece], name: str) -> dict[str, np.ndarray]:
    """The class's metrics of every piece: metric → ``(n_pieces, ...)`` array, as
    :func:`~midiforge.metrics.features.set_features` gives for whole pieces."""
    return {
        metric: np.array([_TABLE[metric](p) for p in pieces], dtype=np.float64)
        for metric in class_metrics(name)
    }


def split_by_class(pieces: Sequence[Piece]) -> dict[str, list[Piece]]:
    """Class → the parts of that class, one per piece that has it, in :data:`CLASS_ORDER`."""
    out: dict[str, list[Piece]] = {name: [] for name in CLASS_ORDER}
    for piece in pieces:
        for name, part in class_pieces(piece).items():
            out[name].append(part)
    return {name: parts for name, parts in out.items() if parts}
