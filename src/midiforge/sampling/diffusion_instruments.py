"""Which instrument each denoised note plays, when generation asks for instruments.

A diffusion run over K programs denoises one ±1 channel per program
(:mod:`midiforge.models.note_features`). Restricting the argmax to the requested channels can
still leave one of them silent (the model prefers another), so :func:`spread_instruments`
hands a short instrument the notes that come closest to it; :func:`instrument_channels` maps
a request of GM programs to channels, with errors naming what the model plays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.models.diffusion import NoteDiffusion

MIN_SHARE = 0.25  # a requested instrument gets at least this part of its fair share of notes


def spread_instruments(
    scores: np.ndarray, chosen: np.ndarray, channels: list[int], share: float = MIN_SHARE
) -> np.ndarray:
    """``chosen`` (channel per note, ``(N,)``) with each of ``channels`` given at least
    ``max(1, floor(share · N / k))`` notes where it can be.

    A short channel takes, one at a time, the note whose score ``scores[:, c]`` ``(N, K)``
    comes closest to the score of the channel it plays now, from channels holding more than
    that minimum (so no channel is pushed below it).
    """
    chosen = np.asarray(chosen, dtype=np.int64).copy()
    n, k = len(chosen), len(channels)
    if k < 2 or n == 0:
        return chosen
    need = max(1, int(share * n / k))
    rows = np.arange(n)
    for c in channels:
        while (chosen == c).sum() < need:
            counts = np.bincount(chosen, minlength=scores.shape[1])
            donor = (counts[chosen] > need) & (chosen != c)
            if not donor.any():
                break
            margin = np.where(donor, scores[:, c] - scores[rows, chosen], -np.inf)
            chosen[int(margin.argmax())] = c
    return chosen


def instrument_channels(model: NoteDiffusion, instruments: Any) -> list[int] | None:
    """The channel indices of the requested GM programs (None: every channel, the model
    chooses). A model without instrument channels plays its one program; asking it for any
    other is an error naming the one it plays, as is a program the run does not know."""
    if instruments is None:
        return None
    wanted = [int(p) for p in instruments]
    scaler = model.scaler
    if not scaler.n_instruments:
        only = scaler.programs[0] if scaler.programs else 0
        if wanted != [only]:
            raise MidiforgeError(
                f"instruments: {wanted} asked of a model that plays program {only} only"
            )
        return None
    unknown = [p for p in wanted if p not in scaler.programs]
    if unknown or not wanted:
        raise MidiforgeError(
            f"instruments: {wanted} are not all among the model's programs {scaler.programs}"
        )
    return [scaler.programs.index(p) for p in wanted]
