"""Sets of token ids as Python ints: bit ``i`` set = id ``i`` allowed.

The musician's token rules (:mod:`midiforge.sampling.token_rules`) decide, for each of a
handful of rows, a few hundred booleans a step, out of a dozen small pieces (the pitches of a
key, the Positions after the last one, the Durations that end in time). As numpy that is a
dozen calls per row at a microsecond or more each, most of a step's overhead; as ints each
piece is one precomputed number (for a threshold, found by bisection) and each rule one ``&``,
tens of nanoseconds. :class:`RowTensors` turns a step's rows into the ``(B, V)`` bool mask
the sampler reads (one ``torch.stack`` of rows unpacked once each, :func:`to_tensor`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def to_bits(mask: np.ndarray) -> int:
    """``(V,)`` bool → the int with bit ``i`` set where ``mask[i]``."""
    return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")


def keep_bits(size: int, cols: slice | np.ndarray, block: np.ndarray) -> int:
    """The int that, ANDed into a row, applies ``block`` to the ids ``cols``, others kept."""
    full = np.ones(size, bool)
    full[cols] = block
    return to_bits(full)


def all_bits(size: int) -> int:
    return (1 << size) - 1


def to_tensor(rows: Sequence[int], size: int) -> torch.Tensor:
    """Bool ``(B, V)`` from one int per row."""
    n_bytes = (size + 7) // 8
    raw = b"".join(row.to_bytes(n_bytes, "little") for row in rows)
    packed = np.frombuffer(raw, np.uint8).reshape(len(rows), n_bytes)
    bits = np.unpackbits(packed, axis=1, count=size, bitorder="little")
    return torch.from_numpy(bits.view(bool))


def from_tensor(mask: torch.Tensor) -> list[int]:
    """One int per row of a bool ``(B, V)`` mask (the inverse of :func:`to_tensor`)."""
    packed = np.packbits(mask.cpu().numpy(), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def combine_bits(masks: Sequence[int]) -> int:
    """``constraints.combine`` for one row: AND in order, a mask that would leave no id
    skipped."""
    out = masks[0]
    for mask in masks[1:]:
        out = out & mask or out
    return out


def prefix_bits(size: int, ids: Sequence[int]) -> list[int]:
    """``out[j]``: the int keeping only the first ``j`` of ``ids`` (0..len) among ``ids``,
    other ids untouched — for a rule that allows what lies below a threshold."""
    out, kept = [], all_bits(size)
    for i in ids:
        kept &= ~(1 << int(i))
    for i in ids:
        out.append(kept)
        kept |= 1 << int(i)
    return [*out, kept]


def suffix_bits(size: int, ids: Sequence[int]) -> list[int]:
    """``out[j]``: the int keeping only ``ids[j:]`` among ``ids``, other ids untouched."""
    return prefix_bits(size, list(ids)[::-1])[::-1]


class RowTensors:
    """One int per row → the bool ``(B, V)`` mask, each distinct row unpacked once.

    A piece's rows repeat (after each kind of token, a few masks recur), so a step is a few
    dict look-ups and one ``torch.stack`` of rows already on the sampler's device: fewer and
    warmer calls than unpacking every row again (:func:`to_tensor`).
    """

    MAX_ROWS = 4096  # distinct rows kept (V bytes each); forgotten all at once past it

    def __init__(self, size: int, device: torch.device | str = "cpu") -> None:
        self.size, self.device = size, torch.device(device)
        self.rows: dict[int, torch.Tensor] = {}

    def __call__(self, rows: Sequence[int]) -> torch.Tensor:
        known, out = self.rows, []
        for row in rows:
            mask = known.get(row)
            if mask is None:
                if len(known) >= self.MAX_ROWS:
                    known.clear()
                mask = known[row] = to_tensor([row], self.size)[0].to(self.device)
            out.append(mask)
        return torch.stack(out)
