"""A token run's written samples played as their style's parts.

The token models write a symusic ``Score`` (one track per program); their chorale voices rest
where Bach's do not (a voice drops out for a beat or two: two or more voices sound on 98.5 %
of a sample's 16ths against Bach's 99.7 %), which is what their failing polyphony cells
measure. The diffusion sampler plays its note rows through
:func:`midiforge.style_parts.play_parts`; this module does the same to a Score, after the move
into a style key (so the registers, fitted in the training pieces' own keys, are where the
style plays them). Tempos, meters, markers and track names stay as they are; drums are left
alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from midiforge.schema import FIELD, NOTE_FIELDS
from midiforge.style_parts import Parts, play_parts


def _rows(score: Any) -> tuple[np.ndarray, np.ndarray]:
    """(note rows in beats, onset order; each row's track index) of the pitched tracks."""
    tpq = score.ticks_per_quarter
    rows, tracks = [], []
    for index, track in enumerate(score.tracks):
        if track.is_drum or not len(track.notes):
            continue
        notes = track.notes.numpy()
        block = np.zeros((len(notes["time"]), len(NOTE_FIELDS)), np.float32)
        block[:, FIELD["pitch"]] = notes["pitch"]
        block[:, FIELD["onset"]] = notes["time"] / tpq
        block[:, FIELD["duration"]] = notes["duration"] / tpq
        block[:, FIELD["velocity"]] = notes["velocity"]
        block[:, FIELD["program"]] = track.program
        rows.append(block)
        tracks.append(np.full(len(block), index))
    if not rows:
        return np.zeros((0, len(NOTE_FIELDS)), np.float32), np.zeros(0, np.int64)
    rows, tracks = np.concatenate(rows), np.concatenate(tracks)
    order = np.argsort(rows[:, FIELD["onset"]], kind="stable")
    return rows[order], tracks[order]


def play_score_parts(score: Any, parts: Parts) -> bool:
    """Play ``score``'s pitched tracks, in place, as ``parts``; False (nothing changed) when
    there are no parts or two pitched tracks share a program (a line would not know its
    track)."""
    if not parts.registers and not parts.lines:
        return False
    programs = [t.program for t in score.tracks if not t.is_drum and len(t.notes)]
    if len(programs) != len(set(programs)):
        return False
    rows, tracks = _rows(score)
    if not len(rows):
        return False
    out = play_parts(rows, parts)
    by_program = {int(score.tracks[i].program): i for i in np.unique(tracks).tolist()}
    tpq = score.ticks_per_quarter
    for program, index in by_program.items():
        mine = out[out[:, FIELD["program"]] == program]
        track = score.tracks[index]
        track.notes.clear()
        for row in mine:
            track.notes.append(
                _note(
                    round(float(row[FIELD["onset"]]) * tpq),
                    max(1, round(float(row[FIELD["duration"]]) * tpq)),
                    int(row[FIELD["pitch"]]),
                    int(row[FIELD["velocity"]]),
                )
            )
    return True


def _note(time: int, duration: int, pitch: int, velocity: int) -> Any:
    from symusic import Note

    return Note(time, duration, pitch, velocity)


def to_style_parts(run: Any, opts: Any, scores: list[Any]) -> int:
    """Play a token run's samples of ``opts.style`` as its parts (``--no-style-parts``: not;
    nor with a primer, an infill or a melody to harmonize, whose notes are the musician's);
    returns how many samples changed."""
    if not opts.style_parts or opts.style is None:
        return 0
    if any(getattr(opts, name) is not None for name in ("primer", "infill", "harmonize")):
        return 0
    parts = run.style_parts(opts.style)
    return sum(play_score_parts(score, parts) for score in scores)
