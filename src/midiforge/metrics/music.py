"""Note arrays: what every musical metric reads, built from a symusic ``Score`` or dataset rows.

A *note array* is a float64 ndarray of shape ``(n, 3)`` whose columns are ``NOTE_COLUMNS`` =
(pitch as a MIDI number, onset in beats, duration in beats), one row per note, in any order.
Times are beats (quarter notes) so the metrics do not depend on tempo or MIDI resolution.
Pitched notes and drum hits are kept apart: a drum "pitch" is an instrument, not a pitch, so the
pitch and texture metrics read the pitched notes only and the drum metrics the drum hits only.
A :class:`Piece` carries both arrays and the bar length the bar-based metrics need.

The metrics live in modules named after what they measure: :mod:`~midiforge.metrics.pitch`,
:mod:`~midiforge.metrics.rhythm`, :mod:`~midiforge.metrics.drums` (per piece, after MusPy),
:mod:`~midiforge.metrics.overlap` (MGEval's set comparison),
:mod:`~midiforge.metrics.self_similarity` (Mittal et al. 2021) and
:mod:`~midiforge.metrics.features`, the table of everything computed per piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NOTE_COLUMNS = ("pitch", "onset", "duration")
PITCH, ONSET, DURATION = 0, 1, 2

STEPS_PER_BEAT = 4  # grid of the piano-roll metrics: 16th notes
BEATS_PER_BAR = 4.0  # 4/4: MIDI's default when a file states no time signature
QUARTERS_PER_WHOLE = 4  # a time signature's denominator counts notes of 1/denominator whole
DRUM_PROGRAM = -1  # the ``program`` of a drum row in dataset notes (as data.encode writes it)


# ----------------------------------------------------------------------------- note arrays


def _empty() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.float64)


def _track_rows(score: Any, drums: bool) -> tuple[np.ndarray, np.ndarray]:
    """Note array of the drum tracks (``drums``) or of the other tracks of a symusic Score, and
    the program of each row (sorted together).

    Times are integer ticks divided by the resolution in float64: symusic's own conversion to
    quarters is float32, whose rounding error moves a note end that lies exactly half a grid
    step past a line to the wrong side when it is quantized.
    """
    import symusic

    ticks = score if score.ttype == symusic.TimeUnit.tick else score.to(symusic.TimeUnit.tick)
    tpq = float(ticks.ticks_per_quarter)
    rows = []
    for track in ticks.tracks:
        if track.is_drum != drums or len(track.notes) == 0:
            continue
        arr = track.notes.numpy()
        onset = arr["time"].astype(np.float64) / tpq
        duration = arr["duration"].astype(np.float64) / tpq
        program = np.full(len(onset), DRUM_PROGRAM if drums else track.program, np.float64)
        rows.append(np.stack([arr["pitch"].astype(np.float64), onset, duration, program], axis=1))
    if not rows:
        return _empty(), np.zeros(0, np.int64)
    return _sorted_with_programs(np.concatenate(rows))


def _sorted_with_programs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(n, 4)`` of (pitch, onset, duration, program) → sorted note array and programs."""
    order = np.lexsort((rows[:, PITCH], rows[:, ONSET]))  # as sort_notes orders them
    return rows[order, :3], rows[order, 3].astype(np.int64)


def _track_notes(score: Any, drums: bool) -> np.ndarray:
    return _track_rows(score, drums)[0]


def pitch_onset_duration(score: Any) -> np.ndarray:
    """The note array ``(n, 3)`` of every non-drum track of a symusic ``Score``, in beats."""
    return _track_notes(score, drums=False)


def drum_notes_from_score(score: Any) -> np.ndarray:
    """The note array ``(n, 3)`` of every drum track of a symusic ``Score`` (pitch = instrument)."""
    return _track_notes(score, drums=True)


def score_beats_per_bar(score: Any) -> float:
    """Bar length in beats (quarter notes) of a Score's first time signature: 6/8 → 3, 3/4 → 3.

    The first one stands for the piece, as MusPy's bar metrics assume a constant meter; a file
    without any is 4/4, MIDI's default.
    """
    if len(score.time_signatures) == 0:
        return BEATS_PER_BAR
    first = score.time_signatures[0]
    return first.numerator * QUARTERS_PER_WHOLE / first.denominator


def _field_rows(
    notes: np.ndarray, fields: Sequence[str], drums: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted note array of the drum or the other dataset rows, and each row's program."""
    rows = np.asarray(notes, dtype=np.float64).reshape(-1, len(fields))
    if "program" in fields:
        program = rows[:, list(fields).index("program")]
        keep = (program == DRUM_PROGRAM) == drums
        rows, program = rows[keep], program[keep]
    elif drums:
        return _empty(), np.zeros(0, np.int64)
    else:
        program = np.zeros(len(rows))  # no program column: MIDI's default, a piano
    index = [list(fields).index(name) for name in NOTE_COLUMNS]
    return _sorted_with_programs(np.column_stack([rows[:, index], program]))


def notes_from_fields(notes: np.ndarray, fields: Sequence[str]) -> np.ndarray:
    """Pitch, onset and duration of the non-drum dataset note rows ``(n, len(fields))``.

    Drum rows (``program`` −1, when the rows have a program column) are left out, as
    :func:`pitch_onset_duration` leaves out drum tracks.
    """
    return _field_rows(notes, fields, drums=False)[0]


def drum_notes_from_fields(notes: np.ndarray, fields: Sequence[str]) -> np.ndarray:
    """Pitch, onset and duration of the drum rows (``program`` −1) of dataset note rows."""
    return _field_rows(notes, fields, drums=True)[0]


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Rows sorted by (onset, pitch): a chord becomes its notes in ascending pitch."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    return notes[np.lexsort((notes[:, PITCH], notes[:, ONSET]))]


def end_beat(notes: np.ndarray) -> float:
    """Where the last note ends, in beats (0 for an empty piece)."""
    if len(notes) == 0:
        return 0.0
    return float(np.max(notes[:, ONSET] + notes[:, DURATION]))


# ----------------------------------------------------------------------------- pieces


@dataclass(frozen=True, eq=False)
class Piece:
    """One piece as the metrics see it.

    ``notes``: pitched notes ``(n, 3)``; ``drums``: drum hits ``(k, 3)`` (empty when the piece
    has no drums); ``beats_per_bar``: bar length in beats, from the piece's time signature;
    ``programs``: the GM program of each row of ``notes`` ``(n,)``, for the metrics per
    instrument (:mod:`~midiforge.metrics.by_instrument`); empty when the source states none,
    and every note then counts as program 0, MIDI's default.
    """

    notes: np.ndarray
    drums: np.ndarray = field(default_factory=_empty)
    beats_per_bar: float = BEATS_PER_BAR
    programs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def piece_from_score(score: Any) -> Piece:
    """Pitched notes (with their programs), drum hits and bar length of a symusic ``Score``."""
    notes, programs = _track_rows(score, drums=False)
    return Piece(notes, drum_notes_from_score(score), score_beats_per_bar(score), programs)


def piece_from_fields(
    notes: np.ndarray, fields: Sequence[str], beats_per_bar: float = BEATS_PER_BAR
) -> Piece:
    """A Piece from dataset note rows; the rows hold no meter, so the bar length is given."""
    pitched, programs = _field_rows(notes, fields, drums=False)
    return Piece(pitched, drum_notes_from_fields(notes, fields), beats_per_bar, programs)
