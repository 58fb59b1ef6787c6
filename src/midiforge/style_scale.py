"""How many pitch classes outside its scale a style's piece uses, and keeping a sample to that.

A Nottingham tune keeps to its scale: 36 % of the training tunes use no pitch class outside
their diatonic scale, 35 % one (the raised leading note of a tune in a minor mode, a
modulation's sharp), and fewer than 8 % more than three. The shipped diffusion model, told a
key, still strays: 4.4 % of its folk notes, over four or five outside classes in 15 of 16
pieces, so its tunes used 11.4 pitch classes against the held-out tunes' 8.0 (MGEval overlap
0.36 against a ceiling of 0.75). A stray is a denoising error, not a choice; an accidental the
style uses is a choice it makes on purpose and repeats. So the number of outside classes per
piece is fitted per style from the training split (:func:`fit_style_accidentals`, kept in the
run beside the rhythm and the parts) and a sample is held to a number drawn from it
(:func:`keep_accidentals`): the piece keeps the outside classes it uses most, up to that
number, and every note of another one moves a semitone onto its scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from midiforge.pitches import MODES, diatonic_scales, frequency_hz
from midiforge.schema import FIELD, NOTE_FIELDS

N_CLASSES = 12
MAX_OUTSIDE = N_CLASSES - len(MODES["major"])  # a diatonic scale leaves out 5 classes
MIDI_MAX = 127
TOLERANCE_BEATS = 1e-3  # times closer than this are equal (ticks stored as float beats)


def _in_scale(scale: int) -> np.ndarray:
    """``(12,)`` bool: the classes of the diatonic scale named by its major tonic."""
    mask = np.zeros(N_CLASSES, dtype=bool)
    mask[[(scale + step) % N_CLASSES for step in MODES["major"]]] = True
    return mask


def outside_classes(pitches: np.ndarray) -> tuple[int, np.ndarray]:
    """(scale, counts): the diatonic scale of some pitches (:func:`diatonic_scales`) and the
    notes on each pitch class outside it ``(12,)`` (zero on the scale's classes)."""
    counts = np.bincount(np.asarray(pitches, dtype=np.int64) % N_CLASSES, minlength=N_CLASSES)
    scale = int(diatonic_scales(counts.astype(np.float64)))
    return scale, np.where(_in_scale(scale), 0, counts)


def fit_accidentals(pieces: Iterable[np.ndarray]) -> list[int]:
    """Pieces by how many outside classes they use: ``[#0, #1, .., #5]``, from each piece's
    pitches."""
    table = [0] * (MAX_OUTSIDE + 1)
    for pitches in pieces:
        if len(pitches):
            table[int((outside_classes(pitches)[1] > 0).sum())] += 1
    return table


def fit_style_accidentals(
    pieces: Iterable[np.ndarray],
    styles: Iterable[str | None],
    every: str,
    fields: Sequence[str] = NOTE_FIELDS,
) -> dict[str, list[int]]:
    """:func:`fit_accidentals` of the whole corpus (key ``every``) and of each style, from
    note rows ``(n, len(fields))`` (drums left out), as a run stores it."""
    k, p = list(fields).index("pitch"), list(fields).index("program")
    corpus: list[np.ndarray] = []
    by_style: dict[str, list[np.ndarray]] = {}
    for notes, style in zip(pieces, styles):
        notes = np.asarray(notes)
        pitches = notes[notes[:, p] >= 0, k]
        corpus.append(pitches)
        if style is not None:
            by_style.setdefault(style, []).append(pitches)
    out = {every: fit_accidentals(corpus)}
    for style in sorted(by_style):
        out[style] = fit_accidentals(by_style[style])
    return out


def style_accidentals(table: dict[str, list[int]], style: str | None, every: str) -> list[int]:
    """Style ``style``'s table, the corpus' for None or a style without its own; empty for a
    run saved before the table (nothing is then kept to a number)."""
    return list(table.get(style if style in table else every, []))


def keep_accidentals(notes: np.ndarray, outside: int, first: int = 0) -> np.ndarray:
    """Note rows ``(n, len(NOTE_FIELDS))`` with, from row ``first`` on, at most ``outside``
    classes outside the new notes' scale: those of the most notes are kept, every note of
    another moves a semitone onto the scale (both neighbours of an outside class are on it):
    to the neighbour no other note is sounding then, else the one the piece plays more.
    Drums, and rows before ``first`` (a primer), are kept as they are."""
    out = np.array(notes, dtype=np.float32, copy=True)
    pitch, program = out[:, FIELD["pitch"]], out[:, FIELD["program"]]
    new = (np.arange(len(out)) >= first) & (program >= 0)
    if not new.any():
        return out
    _, counts = outside_classes(pitch[new])
    order = np.argsort(-counts, kind="stable")
    strays = [int(c) for c in order[max(0, outside) :] if counts[c] > 0]
    if not strays:
        return out
    classes = np.bincount(pitch[new].astype(np.int64) % N_CLASSES, minlength=N_CLASSES)
    onset = out[:, FIELD["onset"]]
    end = onset + out[:, FIELD["duration"]]
    for i in np.flatnonzero(new & np.isin(pitch.astype(np.int64) % N_CLASSES, strays)):
        at = onset[i] + TOLERANCE_BEATS
        sounding = (onset <= at) & (end > at)
        sounding[i] = False
        below, above = max(pitch[i] - 1, 0), min(pitch[i] + 1, MIDI_MAX)
        busy = np.isin([below, above], pitch[sounding])
        if busy[0] != busy[1]:
            pitch[i] = above if busy[0] else below
        else:
            pitch[i] = above if classes[int(above) % 12] > classes[int(below) % 12] else below
    moved = new & (out[:, FIELD["pitch"]] != np.asarray(notes)[:, FIELD["pitch"]])
    out[moved, FIELD["frequency"]] = frequency_hz(pitch[moved])
    return out
