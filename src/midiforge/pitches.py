"""Keys, scales and pitch ranges as a musician types them: ``"D minor"``, ``"C3-C6"``.

Two readers, each returning the text normalised (what the options store) and raising a one-line
:class:`MidiforgeError` that names the accepted forms:

* :func:`parse_key` — a tonic (``A``..``G`` with an optional ``#`` or ``b``) and a mode from
  :data:`MODES` (``"D minor"``, ``"F# dorian"``, ``"Bb"`` = B-flat major, ``"Am"`` = A minor).
  ``minor`` is the natural minor (aeolian); ``harmonic minor`` adds the raised seventh.
* :func:`parse_range` — ``LOW-HIGH`` as note names (scientific pitch notation, ``C4`` = MIDI 60)
  or MIDI numbers (``48-84``), optionally per instrument: ``"piano:C3-C6,bass:E1-G3"``, where
  an entry without a name applies to every instrument the others do not name.

:func:`scale_pitches`, :func:`range_entries` and :func:`range_table` turn the stored text into the
pitch sets the samplers and metrics use. No torch and no music library: the options module
imports this, and ``--help`` stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, GM_MAX, candidates, parse_instruments

N_PITCHES = 128
N_PROGRAMS = GM_MAX + 2  # rows of a pitch table: drums (row 0), then programs 0..127
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MIDI_MAX = 127
# semitones above the tonic of each mode; "minor" is the natural minor
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}
TRIAD_DEGREES = (0, 4, 7, 9)  # the major scale's tonic triad and its relative minor's
SHORT_MODES = {"": "major", "m": "minor", "maj": "major", "min": "minor"}
KEY_FORMS = (
    "a tonic A-G with an optional # or b, then a mode ("
    + ", ".join(MODES)
    + "), e.g. 'D minor', 'F# dorian', 'Bb' (major) or 'Am' (minor)"
)
RANGE_FORMS = (
    "LOW-HIGH as note names (C3-C6, F#2-Bb5; C4 = 60) or MIDI numbers 0..127 (48-84), "
    "optionally per instrument: piano:C3-C6,bass:E1-G3"
)
_TONIC = re.compile(r"([A-Ga-g])([#b♯♭]?)")
_NOTE = r"[A-Ga-g][#b♯♭]?-?\d|\d{1,3}"
_RANGE = re.compile(rf"\s*({_NOTE})\s*-\s*({_NOTE})\s*")


# --------------------------------------------------------------------------- keys


def _tonic(letter: str, accidental: str) -> int:
    shift = {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)
    return (PITCH_CLASSES[letter.upper()] + shift) % 12


def _read_key(text: str) -> tuple[str, str] | None:
    """``" f# Dorian "`` → ``("F#", "dorian")``; None when it is not a key."""
    words = text.strip()
    match = _TONIC.match(words)
    if not match:
        return None
    rest = re.sub(r"\s+", " ", words[match.end() :].strip().lower())
    mode = SHORT_MODES.get(rest, rest)
    if mode not in MODES:
        return None
    accidental = {"♯": "#", "♭": "b"}.get(match.group(2), match.group(2))
    return match.group(1).upper() + accidental, mode


def parse_key(text: str) -> str:
    """A key as typed → ``"D minor"`` (tonic and mode); a one-line error names the forms."""
    read = _read_key(text)
    if read is None:
        raise MidiforgeError(f"key: {text!r} is not a key; use {KEY_FORMS}")
    return f"{read[0]} {read[1]}"


def _tonic_and_mode(key: str) -> tuple[int, str]:
    """``"F# dorian"`` → ``(6, "dorian")``; a one-line error when it is not a key."""
    read = _read_key(key)
    if read is None:
        raise MidiforgeError(f"key: {key!r} is not a key; use {KEY_FORMS}")
    return _tonic(read[0][0], read[0][1:]), read[1]


def scale_pitch_classes(key: str) -> frozenset[int]:
    """The pitch classes (0 = C) of a key as :func:`parse_key` writes it."""
    tonic, mode = _tonic_and_mode(key)
    return frozenset((tonic + step) % 12 for step in MODES[mode])


def key_tonic(key: str) -> int:
    """The pitch class (0 = C) of the tonic of a key as :func:`parse_key` writes it."""
    return _tonic_and_mode(key)[0]


def diatonic_scales(counts: np.ndarray) -> np.ndarray:
    """The diatonic scale of each row of pitch-class counts ``(..., 12)``, named by its major
    tonic (0 = C): the major scale holding the most of the notes. One name covers the seven
    modes of one scale: C major, A minor and D dorian are all 0. This is the key a diffusion
    model with ``key_condition`` is told.

    Notes often leave out the one class that tells two neighbouring scales apart (a tune in G
    without a C or a C# is in G and in D alike), and "the lowest tonic" would then name a
    different scale once the notes are transposed. So a tie goes to the scale whose tonic
    triads (the major's and its relative minor's: degrees 1, 3, 5, 6) hold the most notes, which
    moves with the notes; only a tie on both falls back to the lowest tonic."""
    counts = np.asarray(counts, dtype=np.float64)
    held = counts @ _templates(MODES["major"]).T  # (..., tonic): notes on each scale
    centre = counts @ _templates(TRIAD_DEGREES).T  # the tie-break, kept below one note
    return np.argmax(held + centre / (counts.sum(axis=-1, keepdims=True) + 1), axis=-1)


A4_PITCH, A4_HZ = 69, 440.0  # concert A: MIDI number and Hz
SEMITONES = 12


def frequency_hz(pitch: np.ndarray) -> np.ndarray:
    """Equal-tempered frequency in Hz of MIDI pitch numbers (A4 = 69 = 440 Hz)."""
    return A4_HZ * np.power(2.0, (np.asarray(pitch, np.float64) - A4_PITCH) / SEMITONES)


def scale_templates() -> np.ndarray:
    """``(12, 12)`` 0/1: row ``t`` marks the classes of the diatonic scale whose major tonic is
    ``t`` (the scales :func:`diatonic_scales` names)."""
    return _templates(MODES["major"])


def _templates(steps: tuple[int, ...]) -> np.ndarray:
    """``(12, 12)``: row ``t`` marks the classes ``t + steps`` (mod 12)."""
    row = np.zeros(12)
    row[list(steps)] = 1.0
    return np.stack([np.roll(row, t) for t in range(12)])


def diatonic_scale(classes: Iterable[int]) -> int:
    """:func:`diatonic_scales` of some pitch classes (a class given twice counts twice)."""
    counts = np.bincount(np.asarray(list(classes), dtype=np.int64) % 12, minlength=12)
    return int(diatonic_scales(counts))


def key_scale(key: str) -> int:
    """:func:`diatonic_scale` of a key as :func:`parse_key` writes it (``"A minor"`` → 0)."""
    return diatonic_scale(scale_pitch_classes(key))


def scale_pitches(key: str) -> list[bool]:
    """128 flags: MIDI pitch ``p`` is on the scale of ``key``."""
    classes = scale_pitch_classes(key)
    return [p % 12 in classes for p in range(MIDI_MAX + 1)]


# --------------------------------------------------------------------------- ranges


def note_number(text: str) -> int:
    """``"C4"`` → 60, ``"Bb-1"`` → 10, ``"48"`` → 48 (0..127, else an error)."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
    else:
        match = re.fullmatch(r"([A-Ga-g])([#b♯♭]?)(-?\d)", text)
        if not match:
            raise MidiforgeError(f"range: {text!r} is not a note; use {RANGE_FORMS}")
        letter, accidental, octave = match.groups()
        shift = {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)
        value = (int(octave) + 1) * 12 + PITCH_CLASSES[letter.upper()] + shift
    if not 0 <= value <= MIDI_MAX:
        raise MidiforgeError(f"range: {text!r} is outside MIDI pitches 0..127; use {RANGE_FORMS}")
    return value


def note_name(pitch: int) -> str:
    """60 → ``"C4"``, 61 → ``"C#4"``: scientific pitch notation with sharps."""
    return f"{SHARP_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _one_range(text: str, whole: str) -> tuple[int, int]:
    match = _RANGE.fullmatch(text)
    if not match:
        raise MidiforgeError(f"range: {whole!r} is not a pitch range; use {RANGE_FORMS}")
    low, high = note_number(match.group(1)), note_number(match.group(2))
    if low > high:
        raise MidiforgeError(
            f"range: {whole!r} goes down ({note_name(low)} > {note_name(high)}); use {RANGE_FORMS}"
        )
    return low, high


def range_entries(text: str) -> list[tuple[str | None, int, int]]:
    """``"piano:C3-C6,E1-G3"`` → ``[("piano", 48, 84), (None, 28, 55)]``.

    An entry's name is checked against the GM table (:func:`parse_instruments`); a name given
    twice, or two entries without one, is an error.
    """
    entries: list[tuple[str | None, int, int]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, span = part.rpartition(":")
        word = parse_instruments(name)[0] if name.strip() else None
        if any(e[0] == word for e in entries):
            which = word or "the unnamed range"
            raise MidiforgeError(f"range: {text!r} gives {which} twice; give each once")
        entries.append((word, *_one_range(span, text)))
    if not entries:
        raise MidiforgeError(f"range: {text!r} is empty; use {RANGE_FORMS}")
    return entries


def parse_range(text: str) -> str:
    """A range as typed → ``"C3-C6"`` or ``"piano:C3-C6,bass:E1-G3"`` (note names, sharps)."""
    parts = []
    for word, low, high in range_entries(text):
        span = f"{note_name(low)}-{note_name(high)}"
        parts.append(span if word is None else f"{word}:{span}")
    return ",".join(parts)


def program_row(program: int) -> int:
    """The pitch-table row of a GM program (drums, -1, are row 0)."""
    return program + 1


def range_table(text: str | None) -> np.ndarray:
    """``(129, 128)`` bool: the pitches in range per program row; drums (row 0) all.

    A named entry applies to every program its name can mean (``"bass"``: the Bass family and
    Contrabass, :func:`midiforge.instruments.candidates`), the unnamed one to the rest.
    """
    table = np.ones((N_PROGRAMS, N_PITCHES), bool)
    entries = range_entries(text) if text else []
    pitches = np.arange(N_PITCHES)
    for word, low, high in sorted(entries, key=lambda e: e[0] is not None):
        inside = (pitches >= low) & (pitches <= high)
        if word is None:
            table[1:] = inside
            continue
        for program in candidates(word):
            if program != DRUMS:
                table[program_row(program)] = inside
    return table
