"""Chord symbols as a musician types them (``"Am F C G"``), chord labels of annotated corpora, and
a chord detector — all reduced to the one thing the samplers and metrics use: pitch classes.

Three readers and two detectors, each independent of the others:

* :func:`parse_chord` / :func:`parse_progression` — lead-sheet symbols read by music21's
  ``harmony.ChordSymbol`` (``C``, ``Am``, ``F#m7``, ``Bb/D``, ``Gsus4``, ``Edim``, ``Caug``,
  ``G7``, ``Cmaj7``, ...), ``N`` (or ``NC``, ``N.C.``) for a bar without a chord. A progression is
  one symbol per bar, separated by spaces and/or ``|``; a piece longer than the progression
  repeats it (:func:`bar_chord`). music21 writes flats as ``-``; a ``b`` after a root or bass
  letter is read as a flat first (``Bb/D`` → ``B-/D``).
* :func:`harte_tones` / :func:`harte_root` / :func:`read_chord_labels` /
  :func:`read_chord_annotation` — POP909's ``chord_midi.txt``: tab-separated
  ``start_sec end_sec label`` with Harte labels (``B:maj``, ``A:min7``, ``C:maj/3``,
  ``G:sus4(b7)``, ``N``).
* :func:`detect_chord` — template matching of a duration-weighted pitch-class histogram against
  the major, minor, diminished, augmented and seventh chords of all 12 roots (cosine similarity,
  triads preferred on a near tie); its labels are symbols :func:`parse_chord` reads back. It
  labels corpora without annotations and is what ``docs/benchmarks.md`` measures against
  POP909's annotations.
* :func:`detect_melody_chords` — the chords under a melody (``generate --harmonize``): triads
  only, biased toward the primary and diatonic triads of the key :func:`estimate_key` reads
  from the whole melody (Krumhansl-Kessler profiles), the previous bar's chord kept over an
  ambiguous or empty bar, a diminished triad named as its dominant seventh.

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


def _root(match: re.Match) -> int:
    """The root pitch class of a matched Harte label (letter and accidentals)."""
    shift = match.group(2).count("#") - match.group(2).count("b")
    return (PITCH_CLASSES[match.group(1)] + shift) % N_CLASSES


@lru_cache(maxsize=1024)
def harte_tones(label: str) -> frozenset[int]:
    """A Harte label → its pitch classes (empty for ``N`` or ``X``); an unknown one is an error."""
    text = label.strip()
    if text in ("N", "X", ""):
        return frozenset()
    match = _HARTE.fullmatch(text)
    quality = (match.group(3) or "maj") if match else ""
    if not match or quality not in HARTE_QUALITIES:
        raise MidiforgeError(f"chord label {label!r}: not a Harte label such as B:maj, A:min7, N")
    root = _root(match)
    steps = set(HARTE_QUALITIES[quality])
    for extra in (match.group(4) or "").split(","):
        if extra.strip().startswith("*"):
            steps.discard(_degree(extra.strip()[1:]))
        elif (step := _degree(extra)) is not None:
            steps.add(step)
    if match.group(5) and (bass := _degree(match.group(5))) is not None:
        steps.add(bass)
    return frozenset((root + s) % N_CLASSES for s in steps)


def harte_root(label: str) -> int | None:
    """A Harte label's root pitch class (``A:min7`` → 9; None for ``N``, ``X`` or no root)."""
    match = _HARTE.fullmatch(label.strip())
    return _root(match) if match else None


def read_chord_labels(path: str | Path) -> list[tuple[float, float, str]]:
    """POP909's ``chord_midi.txt`` → ``(start_sec, end_sec, label)`` rows, each label checked."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise MidiforgeError(f"{path}:{number}: expected start, end and label, tab-separated")
        harte_tones(parts[2])  # an unknown label is an error here, naming it
        rows.append((float(parts[0]), float(parts[1]), parts[2].strip()))
    return rows


def read_chord_annotation(path: str | Path) -> list[tuple[float, float, frozenset[int]]]:
    """POP909's ``chord_midi.txt`` → ``(start_sec, end_sec, tones)`` rows (tones empty for N)."""
    return [(start, end, harte_tones(label)) for start, end, label in read_chord_labels(path)]


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


# --------------------------------------------------------------------------- melodies

# Krumhansl & Kessler's key profiles (1982): how well each pitch class fits a major / minor key
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
# the diatonic triads of a key: (semitones of the root above the tonic, detector suffix),
# the primary ones first (I IV V; i iv V v, the minor key having harmonic minor's V too)
PRIMARY: dict[str, tuple[tuple[int, str], ...]] = {
    "major": ((0, ""), (5, ""), (7, "")),
    "minor": ((0, "m"), (5, "m"), (7, ""), (7, "m")),
}
SECONDARY: dict[str, tuple[tuple[int, str], ...]] = {
    "major": ((2, "m"), (4, "m"), (9, "m"), (11, "dim")),
    "minor": ((2, "dim"), (3, ""), (8, ""), (10, "")),
}
MELODY_QUALITIES = ("", "m", "dim")  # a melody's chords: triads (its 7ths are passing tones)
PRIMARY_BONUS = 0.12  # added to the cosine of a primary triad of the melody's key (I IV V)
SECONDARY_BONUS = 0.06  # ... of its other diatonic triads (ii iii vi vii°)
DIM_PENALTY = 0.08  # a diminished triad must fit this much better than a major or minor one
ROOT_BONUS = 0.05  # times the root's share of the bar: of two equal fits, the one whose root sounds
HOLD_MARGIN = 0.05  # the previous bar's chord stays when it scores within this of the best


def estimate_key(histogram: np.ndarray) -> str:
    """A piece's key from its pitch-class histogram ``(12,)``: the Krumhansl-Kessler profile
    (of 24 major and minor keys) it correlates best with, as :func:`midiforge.pitches.parse_key`
    writes keys (``"G major"``); ``"C major"`` for an empty histogram."""
    h = np.asarray(histogram, np.float64).reshape(N_CLASSES)
    if h.sum() <= MIN_NOTE_TIME or np.ptp(h) == 0:
        return "C major"
    profiles, names = _key_profiles()
    centred = h - h.mean()
    # Pearson's r with each of the 24 profiles at once (rows centred and of unit norm)
    return names[int(np.argmax(profiles @ (centred / np.linalg.norm(centred))))]


@lru_cache(maxsize=1)
def _key_profiles() -> tuple[np.ndarray, tuple[str, ...]]:
    """The 24 rolled Krumhansl-Kessler profiles ``(24, 12)``, centred and of unit norm, with
    their key names, major keys first (so a tie goes to the major key, C first)."""
    rows, names = [], []
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(N_CLASSES):
            row = np.roll(np.asarray(profile, np.float64), tonic)
            row = row - row.mean()
            rows.append(row / np.linalg.norm(row))
            names.append(f"{SHARP_NAMES[tonic]} {mode}")
    return np.stack(rows), tuple(names)


def notes_key(pitches: np.ndarray, durations: np.ndarray) -> str:
    """The key of pitched notes (``pitches``, ``durations`` of equal length): their
    duration-weighted pitch-class histogram read by :func:`estimate_key`. One reading for a
    training piece's rows and a generated score, so a style's keys and a sample's agree."""
    classes = np.asarray(pitches, np.int64) % N_CLASSES
    weights = np.asarray(durations, np.float64)
    return estimate_key(np.bincount(classes, weights=weights, minlength=N_CLASSES))


def diatonic_labels(key: str, table: dict[str, tuple[tuple[int, str], ...]]) -> frozenset[str]:
    """The detector labels of ``key``'s triads in ``table`` (:data:`PRIMARY` of ``"A minor"``:
    Am, Dm, E, Em)."""
    name, mode = key.split()
    tonic = PITCH_CLASSES[name[0]] + name[1:].count("#") - name[1:].count("b")
    return frozenset(SHARP_NAMES[(tonic + step) % N_CLASSES] + q for step, q in table[mode])


@lru_cache(maxsize=1)
def _triads() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The melody detector's unit templates ``(T, 12)``, roots ``(T,)`` and labels."""
    vectors, roots, labels = [], [], []
    for suffix in MELODY_QUALITIES:
        for root in range(N_CLASSES):
            v = np.zeros(N_CLASSES)
            v[[(root + s) % N_CLASSES for s in DETECT_QUALITIES[suffix]]] = 1.0
            vectors.append(v / np.linalg.norm(v))
            roots.append(root)
            labels.append(SHARP_NAMES[root] + suffix)
    return np.array(vectors), np.array(roots), labels


def detect_melody_chords(histograms: np.ndarray, key: str | None = None) -> list[str]:
    """The chord under each bar of a melody, from weighted pitch-class histograms ``(B, 12)``.

    A melody bar holds two or three chord tones and passing tones, so the general detector's
    cosine alone is often a tie (a bar of C and E fits C and Am equally). The rule, per bar:

    1. candidates are the major, minor and diminished triads of every root; each scores its
       cosine with the bar's histogram, plus :data:`PRIMARY_BONUS` when it is a primary triad
       of ``key`` (I, IV, V; default key: :func:`estimate_key` of all bars summed) or
       :data:`SECONDARY_BONUS` when it is another diatonic one (folk and pop melodies are
       mostly harmonized by I, IV and V; a bar of B and D is G in G major, not Bm), plus
       :data:`ROOT_BONUS` times the share of the bar on its root, minus :data:`DIM_PENALTY`
       for a diminished one;
    2. the previous bar's chord stays when it scores within :data:`HOLD_MARGIN` of the best
       (a bar of passing tones does not change the harmony);
    3. a bar without notes keeps the previous bar's chord; bars before the first one with
       notes take that bar's chord (``N`` throughout only when no bar has notes);
    4. a diminished triad is written as the dominant seventh it belongs to, a major third
       below (``Bdim`` → ``G7``, which holds B, D and F): in tonal melodies the leading tone's
       triad is the dominant's, and the accompaniment may then sound the dominant's root.

    The histograms are the caller's to weight (:mod:`midiforge.sampling.harmonize` counts
    note-time, more on strong beats).
    """
    h = np.asarray(histograms, np.float64).reshape(-1, N_CLASSES)
    vectors, roots, labels = _triads()
    key = key or estimate_key(h.sum(axis=0))
    primary, secondary = diatonic_labels(key, PRIMARY), diatonic_labels(key, SECONDARY)
    bonus = np.array([PRIMARY_BONUS * (lab in primary) + SECONDARY_BONUS * (lab in secondary)
                      - DIM_PENALTY * lab.endswith("dim") for lab in labels])  # fmt: skip
    totals = h.sum(axis=1, keepdims=True)
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    scores = (h / np.maximum(norms, MIN_NOTE_TIME)) @ vectors.T + bonus[None, :]
    scores += ROOT_BONUS * h[:, roots] / np.maximum(totals, MIN_NOTE_TIME)
    out: list[str] = []
    previous: int | None = None
    for row, total in zip(scores, totals[:, 0]):
        if total > MIN_NOTE_TIME:
            best = int(row.argmax())
            if previous is None or row[previous] < row[best] - HOLD_MARGIN:
                previous = best
        out.append(NO_CHORD if previous is None else labels[previous])
    first = next((label for label in out if label != NO_CHORD), NO_CHORD)
    return [_as_dominant(first if label == NO_CHORD else label) for label in out]


def _as_dominant(label: str) -> str:
    """``"Bdim"`` → ``"G7"`` (rule 4 of :func:`detect_melody_chords`); others as they are."""
    if not label.endswith("dim"):
        return label
    root = SHARP_NAMES.index(label[: -len("dim")])
    return SHARP_NAMES[(root - 4) % N_CLASSES] + "7"
