"""Chord symbols as a musician types them (``"Am F C G"``), chord labels of annotated corpora, and
a chord detector — all reduced to the one thing the samplers and metrics use: pitch classes.

Three readers and one detector, each independent of the others:

* :func:`parse_chord` / :func:`parse_progression` — lead-sheet symbols read by music21's
  ``harmony.ChordSymbol`` (``C``, ``Am``, ``F#m7``, ``Bb/D``, ``Gsus4``, ``Edim``, ``Caug``,
  ``G7``, ``Cmaj7``, ...), ``N`` (or ``NC``, ``N.C.``) for a bar without a chord. A progression is
  one symbol per bar, separated by spaces and/or ``|``; a piece longer than the progression
  repeats it (:func:`bar_chord`). music21 writes flats as ``-``; a ``b`` after a root or bass
  letter is read as a flat first (``Bb/D`` → ``B-/D``).
* :func:`harte_tones` / :func:`read_chord_annotation` — POP909's ``chord_midi.txt``: tab-separated
  ``start_sec end_sec label`` with Harte labels (``B:maj``, ``A:min7``, ``C:maj/3``,
  ``G:sus4(b7)``, ``N``).
* :func:`detect_chord` — template matching of a duration-weighted pitch-class histogram against
  the major, minor, diminished, augmented and seventh chords of all 12 roots (cosine similarity,
  triads preferred on a near tie); its labels are symbols :func:`parse_chord` reads back. It
  labels corpora without annotations and is what ``docs/benchmarks.md`` measures against
  POP909's annotations.

A chord is a :class:`Chord`: its label, root pitch class (None for ``N``) and tone pitch classes
(root, chord tones and a slash chord's bass). music21 is imported on first use only, so
``midiforge generate --help`` stays fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.pitches import PITCH_CLASSES, SHARP_NAMES

N_CLASSES = 12
NO_CHORD = "N"
NO_CHORD_WORDS = frozenset({"N", "NC", "N.C.", "N.C"})
CHORD_FORMS = (
    "lead-sheet symbols such as C, Am, F#m7, Bb/D, Gsus4, Edim, Caug, G7, Cmaj7, or N for no "
    "chord, one per bar, separated by spaces or |"
)
_FLAT_ROOT = re.compile(r"(^|/)([A-Ga-g])(b|♭)")  # Bb, Ebm7, C/Bb → B-, E-m7, C/B-
_SHARP_SIGN = re.compile(r"♯")


@dataclass(frozen=True)
class Chord:
    """One chord: its label as given, its root pitch class (None: no chord), its tones."""

    label: str
    root: int | None
    tones: frozenset[int]

    @property
    def mask(self) -> np.ndarray:
        """``(12,)`` bool: pitch class ``c`` is a tone (all False for ``N``)."""
        out = np.zeros(N_CLASSES, bool)
        out[list(self.tones)] = True
        return out


NONE = Chord(NO_CHORD, None, frozenset())


# --------------------------------------------------------------------------- lead-sheet symbols


@lru_cache(maxsize=512)
def parse_chord(symbol: str) -> Chord:
    """A lead-sheet symbol → :class:`Chord`; a one-line error names the symbol and the forms."""
    text = symbol.strip()
    if text.upper() in NO_CHORD_WORDS:
        return NONE
    from music21 import harmony  # slow to import: only when a chord is read

    figure = _FLAT_ROOT.sub(lambda m: m.group(1) + m.group(2) + "-", _SHARP_SIGN.sub("#", text))
    try:
        chord = harmony.ChordSymbol(figure)
        root, pitches = chord.root(), chord.pitches
    except Exception:  # music21 raises ValueError and others for what it cannot read
        root, pitches = None, ()
    if root is None or not pitches or not text:
        raise MidiforgeError(f"chords: {symbol!r} is not a chord symbol; use {CHORD_FORMS}")
    return Chord(text, root.pitchClass, frozenset(p.pitchClass for p in pitches))


def split_progression(text: str) -> list[str]:
    """``"Am | F C  G"`` → ``["Am", "F", "C", "G"]``: one symbol per bar."""
    return [s for s in re.split(r"[\s|]+", text.strip()) if s]


def parse_progression(text: str) -> str:
    """A progression as typed → its symbols joined by spaces, each checked (the options' reader)."""
    symbols = split_progression(text)
    if not symbols:
        raise MidiforgeError(f"chords: {text!r} has no chord; use {CHORD_FORMS}")
    for symbol in symbols:
        parse_chord(symbol)
    return " ".join(NO_CHORD if s.upper() in NO_CHORD_WORDS else s for s in symbols)


def progression(text: str) -> list[Chord]:
    """The chords of a progression, one per bar (bar ``k`` plays ``chords[k % len]``)."""
    return [parse_chord(s) for s in split_progression(text)]


def bar_chord(chords: list[Chord], bar: int) -> Chord:
    """The chord of 0-based ``bar``: a progression shorter than the piece repeats."""
    return chords[bar % len(chords)]


def tone_table(chords: list[Chord]) -> np.ndarray:
    """``(K, 12)`` bool: row ``k`` is chord ``k``'s tones (an ``N`` row is all False)."""
    return np.stack([c.mask for c in chords]) if chords else np.zeros((0, N_CLASSES), bool)


# --------------------------------------------------------------------------- Harte labels (POP909)

# semitones above the root of each Harte shorthand (Harte et al. 2005, as POP909 writes them)
HARTE_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "7": (0, 4, 7, 10), "dim7": (0, 3, 6, 9),
    "hdim7": (0, 3, 6, 10), "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2), "min9": (0, 3, 7, 10, 2),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "5": (0, 7), "1": (0,),
}  # fmt: skip
_DEGREES = {1: 0, 2: 2, 3: 4, 4: 5, 5: 7, 6: 9, 7: 11, 9: 2, 11: 5, 13: 9}
_HARTE = re.compile(r"([A-G])([#b]*):?([^/(]*)(?:\(([^)]*)\))?(?:/(.+))?")


def _degree(text: str) -> int | None:
    """A Harte degree (``b7``, ``3``, ``#11``) → semitones above the root; ``*x`` (omit) → None."""
    match = re.fullmatch(r"([#b]*)(\d+)", text.strip())
    if not match or int(match.group(2)) not in _DEGREES:
        return None
    shift = match.group(1).count("#") - match.group(1).count("b")
    return _DEGREES[int(match.group(2))] + shift


def harte_tones(label: str) -> frozenset[int]:
    """A Harte label → its pitch classes (empty for ``N`` or ``X``); an unknown one is an error."""
    text = label.strip()
    if text in ("N", "X", ""):
        return frozenset()
    match = _HARTE.fullmatch(text)
    quality = (match.group(3) or "maj") if match else ""
    if not match or quality not in HARTE_QUALITIES:
        raise MidiforgeError(f"chord label {label!r}: not a Harte label such as B:maj, A:min7, N")
    letter, accidentals = match.group(1), match.group(2)
    root = (PITCH_CLASSES[letter] + accidentals.count("#") - accidentals.count("b")) % N_CLASSES
    steps = set(HARTE_QUALITIES[quality])
    for extra in (match.group(4) or "").split(","):
        if extra.strip().startswith("*"):
            steps.discard(_degree(extra.strip()[1:]))
        elif (step := _degree(extra)) is not None:
            steps.add(step)
    if match.group(5) and (bass := _degree(match.group(5))) is not None:
        steps.add(bass)
    return frozenset((root + s) % N_CLASSES for s in steps)


def read_chord_annotation(path: str | Path) -> list[tuple[float, float, frozenset[int]]]:
    """POP909's ``chord_midi.txt`` → ``(start_sec, end_sec, tones)`` rows (tones empty for N)."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise MidiforgeError(f"{path}:{number}: expected start, end and label, tab-separated")
        rows.append((float(parts[0]), float(parts[1]), harte_tones(parts[2])))
    return rows


# --------------------------------------------------------------------------- the detector

# the detector's chord qualities: label suffix → semitones above the root
DETECT_QUALITIES: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7), "m": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10),
}  # fmt: skip
SEVENTH_PENALTY = 0.95  # a four-note chord must fit this much better than a triad to win
MIN_NOTE_TIME = 1e-9  # a histogram with less weight than this is no chord (N)


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Unit template vectors ``(T, 12)``, their weights ``(T,)`` and labels (``C``, ``C#m7``...)."""
    vectors, weights, labels = [], [], []
    for suffix, steps in DETECT_QUALITIES.items():
        for root in range(N_CLASSES):
            v = np.zeros(N_CLASSES)
            v[[(root + s) % N_CLASSES for s in steps]] = 1.0
            vectors.append(v / np.linalg.norm(v))
            weights.append(SEVENTH_PENALTY if len(steps) > 3 else 1.0)
            labels.append(SHARP_NAMES[root] + suffix)
    return np.array(vectors), np.array(weights), labels


def detect_chords(histograms: np.ndarray) -> list[str]:
    """Duration-weighted pitch-class histograms ``(B, 12)`` → a chord label per row (or ``N``).

    Each row is scored against every template by cosine similarity (times
    :data:`SEVENTH_PENALTY` for four-note chords, so a triad plus a passing seventh stays a
    triad); the best wins. A row without note-time is ``N``.
    """
    h = np.asarray(histograms, np.float64).reshape(-1, N_CLASSES)
    vectors, weights, labels = _templates()
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    scores = (h / np.maximum(norms, MIN_NOTE_TIME)) @ vectors.T * weights[None, :]  # (B, T)
    best = scores.argmax(axis=1)
    return [labels[b] if n > MIN_NOTE_TIME else NO_CHORD for b, n in zip(best, norms[:, 0])]


def detect_chord(histogram: np.ndarray) -> str:
    """One histogram ``(12,)`` → its chord label (see :func:`detect_chords`)."""
    return detect_chords(np.asarray(histogram)[None, :])[0]
