"""Memorization audit: the longest passage of a generated piece that also occurs in training.

A piece becomes a sequence of *moves*, one per note after the first: (pitch interval to the
previous note in semitones, onset gap to it in grid ticks), with notes sorted by (onset, pitch).
Moves ignore transposition and the absolute position in the piece, so a copied melody is found
in any key and at any bar. A run of ``k`` equal moves is a run of ``k + 1`` equal notes.

The longest common run is found by binary search on its length ``L``: a run of length ``L``
exists iff some ``L``-gram hash of the generated piece is among the training ``L``-gram hashes
(the property is monotone in ``L``). Hashes are polynomial rolling hashes modulo 2⁶⁴ computed
with numpy prefix sums, so one probe costs O(N) over the training moves and the whole audit
O((N + M) log M) instead of comparing every pair of positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from midiforge.metrics.music import ONSET, PITCH, sort_notes

TICKS_PER_BEAT = 48  # onset gaps are compared on this grid (covers 16th triplets and 32nds)
DEFAULT_THRESHOLD_NOTES = 20  # a shared run this long (five bars of quarter notes) is flagged
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so it is invertible modulo 2**64
_PITCH_OFFSET = 256  # makes an interval (−127..127) non-negative before packing


def moves(notes: np.ndarray) -> np.ndarray:
    """Transposition-invariant moves of a note array ``(n, 3)`` as packed int64 ``(n - 1,)``."""
    notes = sort_notes(notes)
    if len(notes) < 2:
        return np.zeros(0, dtype=np.int64)
    interval = np.diff(notes[:, PITCH]).astype(np.int64) + _PITCH_OFFSET  # (n-1,)
    gap = np.round(np.diff(notes[:, ONSET]) * TICKS_PER_BEAT).astype(np.int64)  # (n-1,)
    return (gap << 10) | interval


def _mix(values: np.ndarray) -> np.ndarray:
    """Spread packed moves over 64 bits (splitmix64 finalizer) before hashing."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _Hasher:
    """Prefix sums that give the hash of any window of one sequence in O(1)."""

    def __init__(self, seq: np.ndarray) -> None:
        n = len(seq)
        with np.errstate(over="ignore"):
            inv = np.uint64(pow(int(_HASH_BASE), -1, 2**64))
            powers = np.cumprod(np.full(n + 1, _HASH_BASE, dtype=np.uint64))  # B^1..B^(n+1)
            self.inv_powers = np.concatenate(
                [[np.uint64(1)], np.cumprod(np.full(n, inv, dtype=np.uint64))]
            )  # (n + 1,): B^-0 .. B^-n
            weighted = _mix(seq) * np.concatenate([[np.uint64(1)], powers[: n - 1]])  # x_j B^j
            self.prefix = np.concatenate([[np.uint64(0)], np.cumsum(weighted, dtype=np.uint64)])
        self.n = n

    def windows(self, length: int) -> np.ndarray:
        """Hashes of every window of ``length`` moves, ``(n - length + 1,)`` uint64."""
        if length > self.n or length <= 0:
            return np.zeros(0, dtype=np.uint64)
        starts = np.arange(self.n - length + 1)
        with np.errstate(over="ignore"):
            raw = self.prefix[starts + length] - self.prefix[starts]  # sum x_j B^j, j in window
            return raw * self.inv_powers[starts]  # normalized to start at B^0


class TrainingIndex:
    """The training pieces' move sequences, queried for the longest shared run.

    Sorted window hashes are built per run length on first use and cached, because the binary
    searches of different generated pieces probe mostly the same lengths.
    """

    def __init__(self, training_notes: Sequence[np.ndarray]) -> None:
        self._hashers = [_Hasher(m) for m in map(moves, training_notes) if len(m)]
        self._cache: dict[int, np.ndarray] = {}
        self.longest = max((h.n for h in self._hashers), default=0)

    def _hashes(self, length: int) -> np.ndarray:
        if length not in self._cache:
            parts = [h.windows(length) for h in self._hashers]
            self._cache[length] = np.unique(np.concatenate(parts)) if parts else np.zeros(0)
        return self._cache[length]

    def _shares_run(self, hasher: _Hasher, length: int) -> bool:
        table = self._hashes(length)
        probe = hasher.windows(length)
        if len(table) == 0 or len(probe) == 0:
            return False
        pos = np.clip(np.searchsorted(table, probe), 0, len(table) - 1)
        return bool((table[pos] == probe).any())

    def longest_shared_run(self, notes: np.ndarray) -> int:
        """Length in notes of the longest run of ``notes`` whose moves occur in training.

        0 when not even one move (two notes) is shared; ``k`` shared moves are ``k + 1`` notes.
        """
        seq = moves(notes)
        hasher = _Hasher(seq)
        lo, hi = 0, min(len(seq), self.longest)  # invariant: a run of lo moves exists
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._shares_run(hasher, mid):
                lo = mid
            else:
                hi = mid - 1
        return lo + 1 if lo > 0 else 0


def longest_shared_run_exhaustive(notes: np.ndarray, training: Sequence[np.ndarray]) -> int:
    """The definition :meth:`TrainingIndex.longest_shared_run` computes fast, by direct search.

    Tries every start pair in every training piece: O(n·m) per piece, for tests and as the
    benchmark's baseline, not for use on a corpus.
    """
    a = moves(notes).tolist()
    best = 0
    for piece in training:
        b = moves(piece).tolist()
        for i in range(len(a)):
            for j in range(len(b)):
                k = 0
                while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                    k += 1
                best = max(best, k)
    return best + 1 if best else 0


def memorization_audit(
    generated: Sequence[np.ndarray],
    training: Sequence[np.ndarray],
    threshold_notes: int = DEFAULT_THRESHOLD_NOTES,
) -> dict[str, object]:
    """Longest training-shared run per generated piece and the share of pieces above threshold.

    Parameters
    ----------
    generated, training : note arrays ``(n, 3)`` (pitch, onset beats, duration beats).
    threshold_notes : a piece is flagged when it shares a run of at least this many notes.

    Returns
    -------
    ``{"longest_runs": [int per piece], "threshold_notes", "flagged": [bool], "share_flagged"}``
    """
    index = TrainingIndex(training)
    runs = [index.longest_shared_run(n) for n in generated]
    flagged = [r >= threshold_notes for r in runs]
    return {
        "longest_runs": runs,
        "threshold_notes": threshold_notes,
        "flagged": flagged,
        "share_flagged": float(np.mean(flagged)) if flagged else float("nan"),
    }
