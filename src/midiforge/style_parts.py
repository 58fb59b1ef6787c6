"""Which instruments a style plays, and which of them play a single line.

A chorale's four strings each sing one voice: a note ends where that voice's next note begins,
and a voice almost never rests (0.4 % of the gaps between a JSB voice's notes are rests, none
overlaps). A diffusion model denoises every note of a window on its own, so nothing in the
network keeps a violin to one note at a time: the shipped model's chorales stacked 4.8
sounding pitches on average against Bach's 3.9, at 6.4 notes a beat against 3.7 (MGEval
polyphony overlap 0.05 against a ceiling of 0.81), and played guitar, flute and string
ensemble, which no chorale in its training data has. These are facts of the training data, so
they are fitted from it, per style, as the rhythm tables are
(:mod:`midiforge.models.note_features`), kept in the run (the diffusion model's
``data_state.json``, :meth:`~midiforge.models.diffusion.NoteDiffusion.parts`; a token run's
``config.yaml``, ``LoadedRun.style_parts``), and applied after sampling (:func:`play_parts`):

* **the band**: the programs holding at least ``PART_SHARE`` of the style's training notes;
  with no instruments asked, a style's notes are played by its band only;
* **lines**: programs of the band whose successive notes follow one another in at least
  ``LINE_SHARE`` of cases (a melody, a chorale voice; not a guitar strumming chords): one note
  at a time. A note follows the one before when it starts later and the two sound together
  for less than ``SLUR_SHARE`` of the time between their onsets: POP909's sung melodies slur
  into their next note (9 % of successive notes overlap, by a median 8 % of the note) yet
  start together with another note in 0.5 % of cases, as a voice does;
* **legato lines**: lines whose successive notes follow with no rest in at least
  ``LEGATO_SHARE`` of cases: a note is held on to the line's next note, up to the style's
  ``held`` beats (the 99th percentile of its lines' note durations);
* **registers**: where each part of the band plays (all but ``REGISTER_SHARE`` of its notes
  at either end); a note outside moves by octaves into it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from midiforge.pitches import frequency_hz
from midiforge.schema import FIELD, NOTE_FIELDS

PART_SHARE = 0.02  # a program is in a style's band with this share of its training notes
LINE_SHARE = 0.99  # a part is a line when this share of its successive notes follow on
SLUR_SHARE = 0.5  # a note follows the one before when they overlap by less of their IOI
LEGATO_SHARE = 0.95  # a line is legato when this share of its successive notes follow unbroken
HELD_QUANTILE = 0.99  # a legato note is held to at most this quantile of the lines' durations
REGISTER_SHARE = 0.005  # a part's register leaves out this share of its notes at either end
OCTAVE = 12
TOLERANCE_BEATS = 1e-3  # times closer than this are equal (ticks stored as float beats)


@dataclass(frozen=True)
class Parts:
    """One style's band (``programs``; empty: any), its ``lines`` (one note at a time), the
    ``legato`` ones among them, and how long (``held``, beats) a legato note may be held."""

    programs: tuple[int, ...] = ()
    lines: tuple[int, ...] = ()
    legato: tuple[int, ...] = ()
    held: float = 0.0
    registers: tuple[tuple[int, int, int], ...] = ()  # (program, lowest, highest pitch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "programs": list(self.programs),
            "lines": list(self.lines),
            "legato": list(self.legato),
            "held": self.held,
            "registers": [list(r) for r in self.registers],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Parts:
        return cls(
            programs=tuple(int(p) for p in state.get("programs", ())),
            lines=tuple(int(p) for p in state.get("lines", ())),
            legato=tuple(int(p) for p in state.get("legato", ())),
            held=float(state.get("held", 0.0)),
            registers=tuple(tuple(int(v) for v in r) for r in state.get("registers", ())),
        )


NO_PARTS = Parts()  # a run saved before the parts were stored: any program, no line kept


def _successive(
    onset: np.ndarray, duration: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gap, duration, follows): for each pair of successive notes of one program in onset
    order, the time from the first's end to the second's onset (negative: they overlap), the
    first's duration, and whether the second follows the first as in a line (it starts later,
    overlapping by less than ``SLUR_SHARE`` of the time between their onsets)."""
    order = np.argsort(onset, kind="stable")
    onset, duration = onset[order], duration[order]
    gap, ioi = onset[1:] - (onset[:-1] + duration[:-1]), np.diff(onset)
    follows = (ioi > TOLERANCE_BEATS) & (-gap < SLUR_SHARE * ioi + TOLERANCE_BEATS)
    return gap, duration[:-1], follows


def fit_parts(pieces: Iterable[np.ndarray], fields: Sequence[str] = NOTE_FIELDS) -> Parts:
    """The :class:`Parts` of note rows ``(n, len(fields))``, one array per piece."""
    o, d, p, k = (list(fields).index(n) for n in ("onset", "duration", "program", "pitch"))
    counts: dict[int, int] = {}
    pitches: dict[int, list[np.ndarray]] = {}
    gaps: dict[int, list[np.ndarray]] = {}
    durations: dict[int, list[np.ndarray]] = {}
    follows: dict[int, list[np.ndarray]] = {}
    for notes in pieces:
        notes = np.asarray(notes)
        programs = notes[:, p].astype(np.int64)
        for program in np.unique(programs).tolist():
            mine = notes[programs == program]
            counts[program] = counts.get(program, 0) + len(mine)
            pitches.setdefault(program, []).append(mine[:, k])
            gap, duration, follow = _successive(mine[:, o].astype(np.float64), mine[:, d])
            gaps.setdefault(program, []).append(gap)
            follows.setdefault(program, []).append(follow)
            durations.setdefault(program, []).append(duration)
    total = sum(counts.values())
    band = sorted(p for p, c in counts.items() if total and c >= PART_SHARE * total and p >= 0)
    lines, legato, held = [], [], []
    for program in band:
        gap = np.concatenate(gaps[program])
        if not len(gap) or np.mean(np.concatenate(follows[program])) < LINE_SHARE:
            continue
        lines.append(program)
        if np.mean(gap < TOLERANCE_BEATS) >= LEGATO_SHARE:
            legato.append(program)
            held.append(np.concatenate(durations[program]))
    longest = float(np.quantile(np.concatenate(held), HELD_QUANTILE)) if held else 0.0
    registers = tuple((q, *_register(np.concatenate(pitches[q]))) for q in band)
    return Parts(tuple(band), tuple(lines), tuple(legato), longest, registers)


def _register(pitches: np.ndarray) -> tuple[int, int]:
    """(lowest, highest): the pitches between which all but ``REGISTER_SHARE`` of a part's
    notes lie at either end, widened to an octave at least (so that every pitch class has a
    place in it)."""
    ends = np.quantile(pitches, [REGISTER_SHARE, 1 - REGISTER_SHARE])
    low, high = (int(np.rint(v)) for v in ends)
    short = max(0, OCTAVE - 1 - (high - low))
    return low - short // 2, high + short - short // 2


def fit_style_parts(
    pieces: Iterable[np.ndarray],
    styles: Iterable[str | None],
    every: str,
    fields: Sequence[str] = NOTE_FIELDS,
) -> dict[str, dict[str, Any]]:
    """:func:`fit_parts` of the whole corpus (key ``every``) and of each style (a piece's
    style None counts for the corpus only), as a run stores it: the diffusion model's
    ``data_state.json`` by label index, a token run's ``config.yaml`` by style name."""
    by_style: dict[str, list[np.ndarray]] = {}
    corpus: list[np.ndarray] = []
    for notes, style in zip(pieces, styles):
        corpus.append(notes)
        if style is not None:
            by_style.setdefault(style, []).append(notes)
    out = {every: fit_parts(corpus, fields).to_dict()}
    for style in sorted(by_style):
        out[style] = fit_parts(by_style[style], fields).to_dict()
    return out


def style_parts(table: dict[str, dict[str, Any]], style: str | None, every: str) -> Parts:
    """Style ``style``'s :class:`Parts` of a stored table (:func:`fit_style_parts`).

    With no style asked, a run trained on one unlabelled corpus plays that corpus' parts
    (``every``); one trained on styles samples their mixture, which has no band and keeps no
    line (any program plays, as before the table). ``NO_PARTS`` too for a run saved before
    the table."""
    if style is not None and style in table:
        return Parts.from_dict(table[style])
    if style is None and set(table) == {every}:
        return Parts.from_dict(table[every])
    return NO_PARTS


def play_parts(notes: np.ndarray, parts: Parts, first: int = 0) -> np.ndarray:
    """Note rows ``(n, len(NOTE_FIELDS))`` in onset order with each part of ``parts`` in its
    register (:func:`in_registers`) and every line played one note at a time, from row
    ``first`` on (rows before it, a primer, are kept as they are; a line's last note among
    them is where its voice leading starts).

    Of a line's notes starting together, the one nearest the line's previous pitch is kept
    (voice leading; the middle one when the line has not begun); each kept note ends at the
    line's next onset at the latest. A legato line's note is held up to it, to no more than
    ``parts.held`` beats, and the line enters with the piece's first new note and holds its
    last note to the piece's end (:func:`_together`; each within ``parts.held`` beats).
    Deltas are recomputed for the rows that remain.
    """
    notes = np.asarray(notes, dtype=np.float32)
    if len(notes) <= first:
        return notes
    out = in_registers(notes, parts, first)
    if not parts.lines:
        return out
    keep = np.ones(len(out), dtype=bool)
    programs = out[:, FIELD["program"]].astype(np.int64)
    onset = out[:, FIELD["onset"]]
    lines: dict[int, tuple[np.ndarray, bool]] = {}
    voiced = np.zeros(0, dtype=np.int64)  # the rows the lines before this one kept
    for program in parts.lines:
        rows = np.flatnonzero(programs == program)
        rows = rows[np.argsort(onset[rows], kind="stable")]
        before = rows[rows < first]
        last = before[-1] if len(before) else None
        register = next(((lo, hi) for q, lo, hi in parts.registers if q == program), None)
        kept = _line_rows(rows[rows >= first], out, last, voiced, register)
        keep[np.setdiff1d(rows[rows >= first], kept)] = False
        _join(out, kept, program in parts.legato, parts.held)
        lines[program] = (kept, len(before) == 0)
        voiced = np.concatenate([voiced, kept])
    begin = float(onset[first])
    end = float((out[keep, FIELD["onset"]] + out[keep, FIELD["duration"]]).max())
    for program, (kept, fresh) in lines.items():
        if program in parts.legato and len(kept):
            _together(out, kept, begin if fresh else None, end, parts.held)
    out = out[keep]
    later = out[first:]  # in onset order again: a line's entry may have moved earlier
    out[first:] = later[np.argsort(later[:, FIELD["onset"]], kind="stable")]
    new = np.arange(len(out)) >= max(first, 1)
    delta = np.diff(out[:, FIELD["onset"]], prepend=out[:1, FIELD["onset"]])
    out[new, FIELD["delta"]] = delta[new]
    return out


def in_registers(notes: np.ndarray, parts: Parts, first: int = 0) -> np.ndarray:
    """Note rows with each note of a part of the band, from row ``first`` on, moved by
    octaves into that part's register (its pitch class kept; other programs as they are): to
    the octave nearest its own where no other note is sounding that pitch already (a guitar's
    chord tone folded onto another would only double it), else the nearest.

    Why: the shipped model's voices wander far outside where their parts play (its chorale
    sopranos span 48..84 where Bach's span 62..78; its folk guitars 30..69 against 36..55),
    so its pieces span 40-55 semitones where the style's span 34-43 (pitch-range overlap
    0.52 and 0.20 against ceilings of 0.91 and 0.79)."""
    out = np.array(notes, dtype=np.float32, copy=True)
    if not parts.registers:
        return out
    new = np.arange(len(out)) >= first
    programs = out[:, FIELD["program"]]
    onset = out[:, FIELD["onset"]]
    end = onset + out[:, FIELD["duration"]]
    for program, low, high in parts.registers:
        outside = new & (programs == program)
        outside &= (out[:, FIELD["pitch"]] < low) | (out[:, FIELD["pitch"]] > high)
        for i in np.flatnonzero(outside):
            pitch = out[i, FIELD["pitch"]]
            sounding = (onset <= onset[i]) & (end > onset[i])
            sounding[i] = False
            out[i, FIELD["pitch"]] = _free_octave(pitch, low, high, out[sounding, FIELD["pitch"]])
    _frequencies(out, new)
    return out


def _free_octave(pitch: float, low: int, high: int, busy: np.ndarray) -> float:
    """``pitch`` moved by octaves into ``[low, high]``: to the octave nearest its own that is
    not among the ``busy`` pitches, else the nearest."""
    octaves = np.arange(low + (pitch - low) % OCTAVE, high + 1, OCTAVE)
    octaves = octaves[np.argsort(np.abs(octaves - pitch), kind="stable")]
    free = ~np.isin(octaves, busy)
    return float(octaves[free.argmax()] if free.any() else octaves[0])


def _frequencies(out: np.ndarray, rows: np.ndarray) -> None:
    """The frequency column of ``rows`` (a mask or indices) recomputed from their pitches."""
    out[rows, FIELD["frequency"]] = frequency_hz(out[rows, FIELD["pitch"]])


def _line_rows(
    rows: np.ndarray,
    out: np.ndarray,
    last: int | None,
    voiced: np.ndarray,
    register: tuple[int, int] | None,
) -> np.ndarray:
    """The rows of one line kept: one per onset, the nearest the previous kept pitch among
    those no other line (its ``voiced`` rows) is sounding then; when every one is, the kept
    note moves by octaves within the line's ``register`` to one that is free (a doubling at
    the octave, as Bach doubles a chord tone). Two chorale voices landing on one pitch sound
    as one: the denoised chorales doubled a voice at the unison three times as often as
    Bach's (3.74 distinct pitches sounding against his 3.92, when all four voices sing).
    ``out`` is changed in place where a note moves."""
    onset, pitch = out[:, FIELD["onset"]], out[:, FIELD["pitch"]]
    end = onset + out[:, FIELD["duration"]]
    kept: list[int] = []
    previous = None if last is None else float(pitch[last])
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and onset[rows[j + 1]] - onset[rows[i]] < TOLERANCE_BEATS:
            j += 1
        group = rows[i : j + 1]
        group = group[np.argsort(pitch[group], kind="stable")]
        at = onset[group[0]] + TOLERANCE_BEATS
        others = voiced[(onset[voiced] <= at) & (end[voiced] > at)]
        free = ~np.isin(pitch[group], pitch[others])
        if free.any():
            group = group[free]
        if previous is None:
            choice = int(group[(len(group) - 1) // 2])
        else:
            choice = int(group[np.abs(pitch[group] - previous).argmin()])
        if not free.any() and register is not None:
            pitch[choice] = _free_octave(float(pitch[choice]), *register, pitch[others])
            _frequencies(out, np.array([choice]))
        kept.append(choice)
        previous = float(pitch[choice])
        i = j + 1
    return np.asarray(kept, dtype=np.int64)


def _join(out: np.ndarray, kept: np.ndarray, legato: bool, held: float) -> None:
    """Each kept note of a line ends by the next one's onset; a legato one is held to it
    (up to ``held`` beats long). ``out`` is changed in place."""
    o, d = FIELD["onset"], FIELD["duration"]
    for a, b in itertools.pairwise(kept):
        room = out[b, o] - out[a, o]
        length = max(out[a, d], min(room, held)) if legato else out[a, d]
        out[a, d] = min(length, room)


def _together(
    out: np.ndarray, kept: np.ndarray, begin: float | None, end: float, held: float
) -> None:
    """A legato line enters with the piece (its first note moved back to ``begin``, held
    on to where it ended) and holds its last note to the piece's ``end``, each by no more
    than ``held`` beats, as a chorale's four voices start and end together. ``out`` is
    changed in place."""
    o, d = FIELD["onset"], FIELD["duration"]
    head, tail = kept[0], kept[-1]
    if begin is not None and 0 < out[head, o] - begin <= held:
        out[head, d] += out[head, o] - begin
        out[head, o] = begin
    if 0 < end - (out[tail, o] + out[tail, d]) <= held:
        out[tail, d] = end - out[tail, o]
