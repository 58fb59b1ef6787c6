"""Drum statistics of one piece: how many drum hits fall on a duple or a triple grid.

Definitions from MusPy (Dong et al., 2020, "MusPy: A Toolkit for Symbolic Music Generation",
``muspy.metrics.drum_in_pattern_rate`` and ``drum_pattern_consistency``; the rate was used by
MuseGAN, Dong et al., 2018). MusPy marks positions inside one beat (a quarter note): the *duple*
pattern holds the 16th-note positions 0, ¼, ½, ¾ of the beat (8th notes included), the *triple*
pattern the 8th-triplet positions 0, ⅓, ⅔. Only drum hits count, so these read the
``drums`` array of a :class:`~midiforge.metrics.music.Piece`, never its pitched notes.

MusPy tests ``time % resolution`` against the pattern in ticks, so an 8th triplet is only in
pattern at a resolution divisible by 3 (480 is, 1024 is not). Here a hit is in pattern when its
onset lies within ``PATTERN_TOLERANCE_BEATS`` of a pattern position, which is MusPy's test at
any resolution whose tick rounding stays under that tolerance.
"""

from __future__ import annotations

import math

import numpy as np

from midiforge.errors import choice_error
from midiforge.metrics.music import ONSET

# Positions within a beat, in beats.
DRUM_PATTERNS: dict[str, tuple[float, ...]] = {
    "duple": (0.0, 0.25, 0.5, 0.75),
    "triple": (0.0, 1 / 3, 2 / 3),
}
PATTERN_TOLERANCE_BEATS = 1e-3  # about half a tick at 480 ticks per quarter note


def drum_in_pattern_rate(drums: np.ndarray, meter: str) -> float:
    """Share of drum hits on the ``meter`` pattern (``duple`` or ``triple``); NaN if none.

    MusPy: drum_in_pattern_rate = #(drum notes in pattern) / #(drum notes).
    """
    if meter not in DRUM_PATTERNS:
        raise choice_error("meter", meter, tuple(DRUM_PATTERNS))
    if len(drums) == 0:
        return math.nan
    within_beat = np.mod(drums[:, ONSET], 1.0)  # (k,) position inside the beat, in beats
    # distance to every position, also to the next beat's 0 (a hit just before the beat)
    positions = np.asarray((*DRUM_PATTERNS[meter], 1.0))  # (p,)
    gap = np.abs(within_beat[:, None] - positions[None, :]).min(axis=1)  # (k,)
    return float((gap <= PATTERN_TOLERANCE_BEATS).mean())


def drum_pattern_consistency(drums: np.ndarray) -> float:
    """The larger of the duple and the triple drum-in-pattern rates; NaN without drum hits.

    MusPy: drum_pattern_consistency = max over meter ∈ {duple, triple} of
    drum_in_pattern_rate(meter). 1 when every hit sits on the 16th grid, or every hit on the
    8th-triplet grid; hits off both grids, or a mix of the two, lower it.
    """
    if len(drums) == 0:
        return math.nan
    return max(drum_in_pattern_rate(drums, meter) for meter in DRUM_PATTERNS)
