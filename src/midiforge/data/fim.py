"""Fill-in-the-middle ordering of token windows, so a token model reads the bars after a gap.

A left-to-right model writing bars A..B of a song sees only what comes before bar A; the seam
at bar B + 1 is as smooth as luck makes it. Trained on some windows in *suffix-prefix-middle*
order (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in the Middle";
the SPM variant), the model reads a few bars after the gap first, then the music before it,
and writes the middle as an ordinary continuation of the prefix::

    Infill_Suffix  <tokens from bar B + 1 on>  Infill_Prefix  <tokens before bar A>  <bars A..B>

SPM suits REMI: the middle continues the prefix token by token, so the sampler's grammar and
length rules read the prefix exactly as they read a primer, and the suffix with its two
markers is a prelude they never see (``sampling.autoregressive.sample(prelude_ids=...)``).
This module owns the format: the two marker tokens (``prepare --fim`` adds them after the
tokenizer's own ids), the training reorder (``train.fim``: the share of windows reordered)
and the prelude the sampler puts before an infill's prefix.

Bars are found by the ``Bar`` id. A window to reorder needs at least one bar line after its
first token; the middle is one to :data:`MAX_MIDDLE_BARS` whole bars, and the suffix the next
:data:`MIN_SUFFIX`–:data:`MAX_SUFFIX` tokens of the piece from the bar line after the middle.
The prefix reaches back as far as the window has room, and a middle too long for it is cut
at its end. The targets of the markers themselves and of the first suffix token (nothing
predicts where a suffix starts) are not counted in the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.schema import FIM_TYPE

SUFFIX_TOKEN = f"{FIM_TYPE}_Suffix"
PREFIX_TOKEN = f"{FIM_TYPE}_Prefix"
MIN_SUFFIX = 16  # tokens of the suffix a reordered window reads (drawn uniformly)
MAX_SUFFIX = 96  # and the most the sampler's prelude holds
MAX_MIDDLE_BARS = 4


def add_fim_tokens(tokenizer: Any) -> None:
    """Add the two markers to a MidiTok tokenizer's vocabulary, after its own ids."""
    if getattr(tokenizer, "is_trained", False):
        raise MidiforgeError("fim: not with BPE; prepare without bpe_vocab to use --fim")
    for token in (SUFFIX_TOKEN, PREFIX_TOKEN):
        if token not in tokenizer.vocab:
            tokenizer.add_to_vocab(token)


def marker_ids(vocab: dict[str, int]) -> tuple[int, int] | None:
    """(suffix id, prefix id) of a vocabulary prepared with ``--fim``, else None."""
    if SUFFIX_TOKEN in vocab and PREFIX_TOKEN in vocab:
        return vocab[SUFFIX_TOKEN], vocab[PREFIX_TOKEN]
    return None


def reorder(
    stream: np.ndarray,
    start: int,
    length: int,
    bar_id: int,
    markers: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``length`` ids of one piece's ``stream`` in suffix-prefix-middle order.

    The middle starts on a bar line among ``stream[start : start + length]`` and runs one to
    :data:`MAX_MIDDLE_BARS` bars; the prefix reaches back from it as far as the window has
    room (so windows are full unless the piece is short). Returns (ids, counted):
    ``counted[k]`` says whether ``ids[k]`` is a target the loss counts. None when there is no
    bar line to split at or no bar after the middle (the caller keeps the window as it is).
    """
    stream = np.asarray(stream)
    window = np.asarray(stream[start : start + length], np.int64)
    bars = np.flatnonzero(window == bar_id)
    if len(bars) == 0:
        return None
    a = start + int(bars[int(rng.integers(len(bars)))])  # the middle starts on this bar line
    after = np.flatnonzero(np.asarray(stream[a + 1 :], np.int64) == bar_id)
    if len(after) == 0:
        return None  # the middle would run to the piece's end: no suffix to read
    n_mid = int(rng.integers(1, MAX_MIDDLE_BARS + 1))
    b = a + 1 + int(after[min(n_mid, len(after)) - 1])  # bar line closing the middle
    cap = suffix_room(length)
    n_suffix = int(rng.integers(min(MIN_SUFFIX, cap), cap + 1))
    suffix = np.asarray(stream[b : b + n_suffix], np.int64)
    head = np.concatenate([[markers[0]], suffix, [markers[1]]])
    room = max(length - len(head), 1)
    first = max(0, min(a, b - room))  # as much prefix as fits, the middle whole if it can be
    body = np.asarray(stream[first : min(first + room, b)], np.int64)
    ids = np.concatenate([head, body])
    counted = np.ones(len(ids), bool)
    counted[:2] = False  # the suffix marker and the suffix's first token: nothing predicts them
    counted[len(head) - 1] = False  # the prefix marker follows a suffix of arbitrary length
    return ids, counted


def prelude(
    suffix_ids: Sequence[int], markers: tuple[int, int], window: int | None = None
) -> list[int]:
    """What the sampler puts before an infill's prefix: the suffix marker, the first tokens of
    the bars after the gap (:data:`MAX_SUFFIX`, and under half a ``window``, so the prefix and
    the middle keep the rest of the model's context), the prefix marker."""
    room = MAX_SUFFIX if window is None else suffix_room(window)
    return [markers[0], *list(suffix_ids)[:room], markers[1]]


def suffix_room(window: int) -> int:
    """The most suffix tokens a context of ``window`` ids holds: :data:`MAX_SUFFIX`, and with
    the markers under half the window (at least one)."""
    return max(min(MAX_SUFFIX, window // 2 - 3), 1)
