"""MIDI in and out through symusic: the only place, with the encoders, that knows ``Score``.

Loading turns every parser failure into a :class:`MidiforgeError` naming the file, so a
corpus scan can record the reason and move on; saving is atomic (temp file + rename) so an
interrupted write never leaves a truncated ``.mid`` behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from symusic import Score

from midiforge.errors import MidiforgeError

MIDI_SUFFIXES = frozenset({".mid", ".midi"})  # compared case-insensitively: use is_midi_path


def is_midi_path(path: str | Path) -> bool:
    """True when ``path`` ends in .mid or .midi, in any letter case."""
    return Path(path).suffix.lower() in MIDI_SUFFIXES


def load_midi(path: str | Path) -> Score:
    """Parse a MIDI file into a tick-based :class:`symusic.Score`.

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
        return Score(str(path))
    except Exception as exc:  # symusic raises RuntimeError/ValueError/IndexError variously
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MidiforgeError(f"cannot read MIDI file {path}: {reason}") from None


def save_midi(score: Score, path: str | Path) -> Path:
    """Write ``score`` to ``path`` atomically and return the path.

    The bytes go to a temporary file in the same folder first and are renamed over ``path``
    only once complete, so readers never see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        score.dump_midi(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
