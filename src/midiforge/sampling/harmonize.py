"""Harmonizing: an accompaniment written under a given melody, by any family's sampler.

``generate --harmonize melody.mid`` reads the melody (:func:`midiforge.io.midi.load_midi`):
every pitched note of every track is the melody, drums are ignored, its bar lines come from
its time signatures (:func:`midiforge.sampling.infill.bar_lines`) and its length is the bars
up to its last note's end. Then:

1. **Chords.** Per bar, a pitch-class histogram of the melody's note-time (each note clipped
   to the bar), a note counting :data:`DOWNBEAT_WEIGHT` times when it starts on the bar line
   and :data:`BEAT_WEIGHT` times on another beat (quarter notes; dotted quarters in 6/8, 9/8,
   12/8), read by :func:`midiforge.chords.detect_melody_chords` (triads, biased toward the
   key of the whole melody, the previous chord kept when a bar is ambiguous or empty).
   ``--chords`` replaces them: the user's progression wins.
2. **The accompaniment.** The family's own sampler writes a piece of exactly as many bars
   (the ``bars`` length rule, which ends it on the last bar line), steered toward those
   chords bar by bar (the ``chords`` steer), on the instruments of
   :func:`accompaniment_programs` (``--instruments`` wins), each pitch in ``E1`` up to the
   melody's low notes (:func:`default_range`; ``--range`` wins), so it stays below the
   tune. A token model gets :data:`TOKENS_PER_BAR` tokens per bar and a note model
   :data:`NOTES_PER_BAR` notes per bar when ``--max-tokens`` allows fewer. A note model
   (LSTM) also **hears the melody** (:func:`following`): its notes are read into the sampler
   where they fall, on the model's instrument for the melody (:func:`lead_program`), in the
   melody's own bars, and the chords are steered by :data:`LEAD_CHORD_BONUS_NATS`; a model
   trained on tunes over chords then plays along with the tune as it learned to. Token and
   diffusion models do not read it: the chords are what ties the two together.
3. **Bar by bar onto the melody.** Bar ``k`` of the generated piece goes under bar ``k`` of
   the melody, each note at the same offset (in beats) from the bar line. A note model that
   heard the melody writes in its bars; the others write their own (4/4 for diffusion, the
   time signatures a token model chooses), so where the two bars differ in length a note
   starting past the melody's bar is dropped and one sounding past it is cut at its end (a
   3/4 melody keeps the first three beats of a 4/4 bar); where they agree a note may sound on
   into the next bar. Nothing sounds past the melody's last bar line.
4. **The file.** The melody's file as read (every note keeps its track, ticks, duration,
   pitch, velocity and program; tempos and time signatures kept), plus one new track per
   accompaniment instrument (:func:`midiforge.sampling.infill.place_rows`, as infilling
   writes its notes).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from symusic import Score

from midiforge.chords import N_CLASSES, detect_melody_chords
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, describe, family_of
from midiforge.sampling.infill import bar_lines, chooses_instruments, place_rows, run_programs
from midiforge.sampling.options import GenerateOptions
from midiforge.schema import FIELD

log = logging.getLogger(__name__)

DOWNBEAT_WEIGHT = 2.0  # note-time of a melody note starting on the bar line counts this much
BEAT_WEIGHT = 1.5  # ... on another beat of the bar; off the beat, once
# the families a default accompaniment is drawn from: instruments that play chords and bass
ACCOMPANIMENT_FAMILIES = frozenset({"Piano", "Organ", "Guitar", "Bass", "Ensemble"})
LOWEST_PITCH = 28  # E1, the bass guitar's lowest string: the floor of the default range
MIN_SPAN = 12  # the default range spans at least an octave, even under a low melody
# the default range's ceiling: the pitch a tenth of the melody's notes lie below. At its median
# (tried first) the strings and the piano's right hand wove through the tune's lower half.
CEILING_PERCENTILE = 10
TOKENS_PER_BAR = 128  # REMI with programs: the shipped model writes ~20 notes of 5 tokens a bar
NOTES_PER_BAR = 16
# the chord steer's bonus (nats) for a note model that hears the melody (:func:`following`):
# it leans to its own harmony of what it hears, and at Musical's 3 nats its guitar matched the
# detected chords in 0.69 of its note-time, 0.72 at 4.5, 0.80 at 6 and 0.94 at 9, against 0.80
# for the tunes' own chord tracks (bench/harmonize.py, 8 Nottingham tunes, stop 31): 6 follows
# the chords as closely as a musician's chord track does, and leaves room for passing notes
LEAD_CHORD_BONUS_NATS = 6.0
EPS = 1e-6  # beats: onsets this close to a bar line are on it


@dataclass
class Melody:
    """A melody file as read, with its bar lines and pitched notes."""

    path: Path
    score: Score  # as read: its ticks are the file's own
    lines: np.ndarray  # ticks of the bar lines: n_bars + 1 (the last closes the melody)
    notes: np.ndarray  # (n, 4) int64: program, pitch, start, end (ticks), pitched notes only
    programs: list[int]  # the melody's programs, most notes first

    @property
    def n_bars(self) -> int:
        return len(self.lines) - 1

    @property
    def end(self) -> int:
        return int(self.lines[-1])

    def beat_lines(self) -> np.ndarray:
        return self.lines / self.score.ticks_per_quarter


def read_melody(path: str | Path) -> Melody:
    """The melody at ``path``; one without pitched notes is a one-line error."""
    from midiforge.io.midi import load_midi

    return melody_of(load_midi(path), path)


def melody_of(score: Score, path: str | Path) -> Melody:
    """The melody in ``score``, read from ``path`` (named in the error when it has no pitched
    notes); the web page checks an upload with it before any file is written."""
    from midiforge.metrics.adherence import pitched_notes

    notes = pitched_notes(score)
    if len(notes) == 0:
        raise MidiforgeError(
            f"harmonize: {path} holds no pitched notes (drums are not a melody); give a MIDI "
            "file with a melody on a pitched instrument"
        )
    lines = bar_lines(score)
    last = int(np.searchsorted(lines, notes[:, 3].max(), side="left"))  # closes the last note
    lines = lines[: max(last, 1) + 1]
    counts = Counter(int(p) for p in notes[:, 0])
    return Melody(Path(path), score, lines, notes, [p for p, _ in counts.most_common()])


# --------------------------------------------------------------------------- chords


def _beat_ticks(score: Score, lines: np.ndarray) -> np.ndarray:
    """The beat of each bar in ticks: a quarter note, a dotted quarter in compound meters
    (6/8, 9/8, 12/8), the denominator's note otherwise (2/2: a half)."""
    tpq = score.ticks_per_quarter
    signatures = sorted(score.time_signatures, key=lambda t: t.time)
    out = np.full(len(lines) - 1, tpq, np.int64)
    for i, line in enumerate(lines[:-1]):
        current = [t for t in signatures if t.time <= line]
        if current:
            num, den = current[-1].numerator, current[-1].denominator
            compound = den == 8 and num % 3 == 0 and num > 3
            out[i] = max(round(tpq * 4 / den * (3 if compound else 1)), 1)
    return out


def melody_histograms(melody: Melody) -> np.ndarray:
    """``(n_bars, 12)``: per bar, the melody's note-time per pitch class, weighted by onset
    (:data:`DOWNBEAT_WEIGHT` on the bar line, :data:`BEAT_WEIGHT` on another beat)."""
    from midiforge.metrics.adherence import note_overlaps  # the metric's own clipping to bars

    notes, lines = melody.notes, melody.lines
    time = note_overlaps(notes, np.stack([lines[:-1], lines[1:]], axis=1))  # (n, bars) ticks
    bar = np.clip(np.searchsorted(lines, notes[:, 2], side="right") - 1, 0, melody.n_bars - 1)
    offset = notes[:, 2] - lines[bar]
    weight = np.where(offset % _beat_ticks(melody.score, lines)[bar] == 0, BEAT_WEIGHT, 1.0)
    weight = np.where(offset == 0, DOWNBEAT_WEIGHT, weight)
    onehot = np.eye(N_CLASSES)[notes[:, 1] % N_CLASSES]  # (n, 12)
    return (time * weight[:, None]).T @ onehot


def melody_chords(melody: Melody) -> list[str]:
    """The chord under each bar of the melody (module docstring, step 1)."""
    return detect_melody_chords(melody_histograms(melody))


# --------------------------------------------------------------------------- instruments


def accompaniment_programs(run: Any, melody: Melody, asked: str | None) -> list[int]:
    """The programs the accompaniment plays: ``asked`` (the user's ``--instruments``), else the
    run's pitched programs other than the melody's (nor the run's stand-in for one of them),
    those of :data:`ACCOMPANIMENT_FAMILIES` when there are any."""
    from midiforge.instruments import resolve_instruments

    known = sorted(int(p) for p in run.instruments)
    if not chooses_instruments(run) or len(known) < 2:
        raise MidiforgeError(
            f"harmonize: this run knows one instrument ({describe(known)}), so it cannot play "
            "an accompaniment on another than the melody's; use a run trained on several "
            "instruments (prepare --tracks all), such as the shipped models"
        )
    if asked:
        return resolve_instruments(asked, known)
    taken = set(melody.programs) | set(run_programs(melody.programs, known))
    free = [p for p in known if p not in taken and p != DRUMS]
    if not free:
        raise MidiforgeError(
            f"harmonize: the melody plays every pitched instrument this run knows "
            f"({describe(known)}); give --instruments for the accompaniment"
        )
    return [p for p in free if family_of(p) in ACCOMPANIMENT_FAMILIES] or free


def default_range(melody: Melody) -> str:
    """``LOW-HIGH`` from :data:`LOWEST_PITCH` up to the melody's low pitches (the
    :data:`CEILING_PERCENTILE` percentile of its notes, at least an octave above the floor)."""
    high = int(np.percentile(melody.notes[:, 1], CEILING_PERCENTILE))
    high = max(high, LOWEST_PITCH + MIN_SPAN)
    return f"{LOWEST_PITCH}-{high}"


# --------------------------------------------------------------------------- bar by bar


def fit_to_melody(score: Score, melody: Melody) -> np.ndarray:
    """The generated ``score``'s notes as rows in beats of the melody, bar ``k`` under bar
    ``k`` (module docstring, step 3)."""
    from midiforge.data.encode import notes_from_score

    rows = notes_from_score(score).astype(np.float64)
    own = bar_lines(score) / score.ticks_per_quarter  # beats
    mine = melody.beat_lines()
    onset = rows[:, FIELD["onset"]]
    k = np.searchsorted(own, onset + EPS, side="right") - 1
    keep = (k >= 0) & (k < min(melody.n_bars, len(own) - 1))
    rows, onset, k = rows[keep], onset[keep], k[keep]
    offset = onset - own[k]
    length, own_length = mine[k + 1] - mine[k], own[k + 1] - own[k]
    inside = offset < length - EPS
    rows, offset, k = rows[inside], offset[inside], k[inside]
    same = np.isclose(length[inside], own_length[inside])
    until = np.where(same, mine[-1], mine[k + 1])
    rows[:, FIELD["onset"]] = mine[k] + offset
    rows[:, FIELD["duration"]] = np.minimum(rows[:, FIELD["duration"]], until - mine[k] - offset)
    return rows


@dataclass
class Meter:
    """The melody's bars as a note sampler counts them: ``lines``, beats of its bar lines from
    the first, and ``signatures``, its time signatures as ``(beat, numerator, denominator)``."""

    lines: np.ndarray
    signatures: list[tuple[float, int, int]]

    def sign(self, score: Score) -> None:
        """Give ``score`` (at beat 0 where the melody's first bar line is) these signatures."""
        from symusic import TimeSignature

        score.time_signatures.clear()
        for beat, num, den in self.signatures:
            time = round(beat * score.ticks_per_quarter)
            score.time_signatures.append(TimeSignature(time, num, den))


def meter_of(melody: Melody) -> Meter:
    """:class:`Meter` of ``melody`` (the signature in force at its first bar line at 0)."""
    tpq, first = melody.score.ticks_per_quarter, int(melody.lines[0])
    signatures = sorted(melody.score.time_signatures, key=lambda t: t.time)
    start = [t for t in signatures if t.time <= first][-1:]
    kept = start + [t for t in signatures if t.time > first]
    marks = {max(t.time - first, 0) / tpq: (t.numerator, t.denominator) for t in kept}
    return Meter((melody.lines - first) / tpq, [(b, *m) for b, m in sorted(marks.items())])


def lead_program(run: Any, melody: Melody, programs: list[int]) -> int | None:
    """The run's instrument the melody is read on: its own program, else the run's first of its
    GM family, else the run's first pitched program the accompaniment does not play (None: the
    accompaniment plays them all)."""
    known = sorted(int(p) for p in run.instruments)
    main = melody.programs[0]
    same = [p for p in known if p == main] or [p for p in known if family_of(p) == family_of(main)]
    free = [p for p in same + known if p not in programs and p != DRUMS]
    return free[0] if free else None


def following(run: Any, melody: Melody, programs: list[int]) -> dict[str, Any]:
    """A note sampler's ``lead``, ``meter`` and ``chord_bonus``: the melody as the part its
    samples play along with (:class:`midiforge.sampling.autoregressive.Lead`), on
    :func:`lead_program`, in the melody's own beats and bars (:func:`meter_of`), the chords
    steered by :data:`LEAD_CHORD_BONUS_NATS`. Empty when no program is left for it."""
    from midiforge.sampling.autoregressive import Lead

    program = lead_program(run, melody, programs)
    if program is None:
        return {}
    tpq, first = melody.score.ticks_per_quarter, int(melody.lines[0])
    notes = melody.notes[np.lexsort((melody.notes[:, 1], melody.notes[:, 2]))]
    notes = notes[notes[:, 2] >= first]
    velocities = [n.velocity for t in melody.score.tracks if not t.is_drum for n in t.notes]
    lead = Lead(
        onset=(notes[:, 2] - first) / tpq, pitch=notes[:, 1].astype(np.float64),
        duration=(notes[:, 3] - notes[:, 2]) / tpq,
        velocity=np.full(len(notes), float(np.mean(velocities))),
        program=np.full(len(notes), float(program)),
    )  # fmt: skip
    return {"lead": lead, "meter": meter_of(melody), "chord_bonus": LEAD_CHORD_BONUS_NATS}


def harmonizing(sampler: Any) -> Any:
    """``sampler`` (one of ``generate.SAMPLERS``) wrapped for ``--harmonize``: the same call,
    each score it returns the melody with an accompaniment under it."""

    def run_harmonize(run: Any, opts: GenerateOptions, primer: Any, label: int | None):
        return harmonize(run, opts, sampler, label)  # primer is None: options refuse both

    return run_harmonize


def _sub_options(run: Any, opts: GenerateOptions, melody: Melody, programs: list[int]):
    """The sampler's options: the melody's bars, chords, instruments, range and a budget."""
    chords = opts.chords or " ".join(melody_chords(melody))
    tokens = run.model.sampler == "tokens"
    bars = melody.n_bars
    sub = replace(opts, harmonize=None, bars=bars, chords=chords,
                  instruments=",".join(str(p) for p in programs),
                  range=opts.range or default_range(melody))  # fmt: skip
    per_bar = TOKENS_PER_BAR if tokens else NOTES_PER_BAR
    return replace(sub, max_tokens=max(opts.max_tokens, per_bar * bars))


def harmonize(run: Any, opts: GenerateOptions, sampler: Any, label: int | None):
    """``(scores, generated, grammar errors)`` as the samplers return them, each score the
    melody of ``opts.harmonize`` with an accompaniment (module docstring); ``generated``
    counts tokens for a token model, accompaniment notes written otherwise."""
    melody = read_melody(opts.harmonize)
    programs = accompaniment_programs(run, melody, opts.instruments)
    sub = _sub_options(run, opts, melody, programs)
    log.info(
        "harmonize: %s, %d bars, chords %s, on %s, range %s", melody.path, melody.n_bars,
        sub.chords, describe(programs), sub.range,
    )  # fmt: skip
    extra = {} if run.model.sampler != "notes" else following(run, melody, programs)
    scores, generated, errors = sampler(run, sub, None, label, **extra)

    def program_for(program: int) -> int:
        return program if program in programs else programs[0]

    out = []
    for score in scores:
        song = melody.score.copy()
        rows = fit_to_melody(score, melody)
        place_rows(song, rows, 0, melody.end, program_for, {})
        out.append(song)
        if run.model.sampler != "tokens":
            generated[len(out) - 1] = len(rows)
    return out, generated, errors
