"""MIDI in and out through symusic: the only place, with the encoders, that knows ``Score``.

Loading turns every parser failure into a :class:`MidiforgeError` naming the file, so a
corpus scan can record the reason and move on. A file that parses but states values no music
has (ticks per quarter 0, note times past the 32-bit tick range, a time signature over 2**255,
a tempo of 0) is refused the same way (:func:`check_score`), so no later stage divides by zero
or overflows on it: ``prepare`` skips it, ``generate --primer`` and ``evaluate`` say why.
Saving is atomic (temp file + rename) so an interrupted write, or a full disk, never leaves a
truncated ``.mid`` behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from symusic import Score

from midiforge.errors import MidiforgeError, naming
from midiforge.io.bounds import check_renderable, notes_end_tick

MIDI_SUFFIXES = frozenset({".mid", ".midi"})  # compared case-insensitively: use is_midi_path
# Notes must end within this many beats (18 hours at 60 BPM). Resampled to any grid of up to
# 2**15 ticks per beat (MidiTok's, symusic's), such times still fit the 32-bit tick range;
# later ones overflowed it (symusic::resample: "out of int32 range").
MAX_BEATS = 2**16


def is_midi_path(path: str | Path) -> bool:
    """True when ``path`` ends in .mid or .midi, in any letter case."""
    return Path(path).suffix.lower() in MIDI_SUFFIXES


def load_midi(path: str | Path, *, max_beats: float | None = MAX_BEATS) -> Score:
    """Parse a MIDI file into a tick-based :class:`symusic.Score`, checked by :func:`check_score`.

    ``max_beats=None`` accepts notes at any time (the renderers, which stop at a length in
    seconds, draw the start of such a file instead of refusing it).

    Raises
    ------
    MidiforgeError
        When the file is missing or symusic cannot parse it; the message names the file and
        the parser's reason, which ``prepare`` stores as the skip reason.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiforgeError(f"MIDI file not found: {path}")
    try:
        score = Score(str(path))
    except Exception as exc:  # symusic raises RuntimeError/ValueError/IndexError variously
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MidiforgeError(f"cannot read MIDI file {path}: {reason}") from None
    check_score(score, path, max_beats=max_beats)
    return score


def check_score(score: Score, path: str | Path, *, max_beats: float | None = MAX_BEATS) -> None:
    """Refuse a parsed score whose times, meter or tempo no music has, naming the value.

    A score without notes only needs a tick rate (what it lacks is for the caller to judge:
    ``prepare`` skips it as empty); one with notes is checked as rendering checks it
    (:func:`midiforge.io.bounds.check_renderable`), and its notes must end within
    ``max_beats`` (default :data:`MAX_BEATS`; None: no limit).
    """
    if score.ticks_per_quarter < 1:
        raise MidiforgeError(
            f"{path}: ticks per quarter note is {score.ticks_per_quarter}; a MIDI file needs 1 "
            "or more (SMPTE time division is not supported)"
        )
    if score.note_num() == 0:
        return
    check_renderable(score, path)
    beats = notes_end_tick(score) / score.ticks_per_quarter
    if max_beats is not None and beats > max_beats:
        raise MidiforgeError(
            f"{path}: the notes end at beat {beats:.0f}; pieces of up to {max_beats:g} beats "
            "are accepted (times this far out come from a damaged file)"
        )


def save_midi(score: Score, path: str | Path) -> Path:
    """Write ``score`` to ``path`` atomically and return the path.

    The bytes go to a temporary file in the same folder first and are renamed over ``path``
    only once complete, so readers never see a half-written file; a failed write (a full disk)
    raises the OSError, naming ``path``, and leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):
            # the bytes are written here, not by symusic's dump_midi, which ignores a failed
            # write: on a full disk it left a truncated file and no error
            tmp.write_bytes(score.dumps_midi())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
