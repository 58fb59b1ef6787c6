"""Learned controls: a chord, a note-density and a polyphony token per bar, trained with dropout.

``prepare --controls chords,density,polyphony`` writes each bar's control tokens right after
its ``Bar`` (and ``TimeSig``) token, before its first ``Position``, always in this order::

    Bar TimeSig [Chord_A:min] [Density_3] [Polyphony_2] Position_0 Program_0 Pitch_57 ...

so a model learns to read them as what the bar will hold, and the token sampler can write them
for a user (``generate --chords "Am F C G" --density 8 --polyphony 2``, forced one id at a
time) or let the model write its own.

Vocabulary (fixed; :func:`control_tokens`, added after the tokenizer's own ids with MidiTok's
``add_to_vocab``; ``store.tokenizer_file`` keeps them across save and load)
    ``Chord_<root>:<quality>``: the 12 roots (sharps, :data:`midiforge.pitches.SHARP_NAMES`) ×
    the 7 qualities the chord detector emits (``maj min dim aug 7 maj7 min7``, Harte shorthand,
    so :func:`midiforge.chords.harte_tones` reads a value back), and ``Chord_N``: 85 tokens.
    ``Density_<k>``: pitched notes starting in the bar, bucketed 0 | 1-2 | 3-4 | 5-8 | 9-16 |
    17-32 | 33+ (:data:`DENSITY_EDGES`): 7 tokens.
    ``Polyphony_<k>``: pitched notes per distinct onset in the bar, bucketed 1 | ≤1.5 | ≤2.5 |
    ≤3.5 | more as 1..5 (:data:`POLYPHONY_EDGES`), 0 for a bar without notes: 6 tokens.

Labels (:func:`bar_labels`), on the score as encoded (after MidiTok's preprocessing), whose bars
(:func:`midiforge.bars.bar_bounds`) are the stream's ``Bar`` tokens; drums are left
out of all three:
    chord — from the annotation beside the source file (POP909's ``chord_midi.txt``), its seconds
    turned into ticks on the score's tempo map: the annotated chord covering most of the bar,
    reduced to the vocabulary (:func:`chord_value`). Otherwise — and for a file whose silences
    ``prepare`` shortened, whose clock the annotation no longer fits — the chord detector
    (:func:`midiforge.chords.detect_chords`) on the bar's pitch-class note-time histogram, the
    one chord adherence measures with (:func:`midiforge.bars.bar_histograms`).

Dropout (:func:`kept`), seeded by the file's content hash so ``prepare`` stays deterministic: a
piece keeps no control token at all with probability :data:`PIECE_DROPOUT`; otherwise each
control token of each bar is kept with probability :data:`TOKEN_KEEP`. A model so trained
writes music without them, with all of them, and with any subset in their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.bars import bar_bounds, bar_histograms, pitched_notes, seconds_to_ticks
from midiforge.chords import (
    DETECT_QUALITIES,
    N_CLASSES,
    NO_CHORD,
    SEVENTH_PENALTY,
    detect_chords,
    harte_root,
    harte_tones,
    progression,
    read_chord_labels,
    split_progression,
)
from midiforge.data.corpora import CHORDS_SUFFIX, POP909_CHORDS
from midiforge.data.encode import score_to_array
from midiforge.errors import MidiforgeError, choice_error
from midiforge.pitches import SHARP_NAMES
from midiforge.schema import CONTROL_NAMES, CONTROL_TYPES

# option name → token type, in the stream's order
CONTROLS = dict(zip(CONTROL_NAMES, CONTROL_TYPES, strict=True))
# the detector's label suffix → the quality in a Chord token's value (Harte shorthand)
CHORD_QUALITIES = {"": "maj", "m": "min", "dim": "dim", "aug": "aug", "7": "7", "maj7": "maj7",
                   "m7": "min7"}  # fmt: skip
DENSITY_EDGES = (0, 2, 4, 8, 16, 32)  # notes per bar: bucket k holds up to EDGES[k], 6 = more
POLYPHONY_EDGES = (1.0, 1.5, 2.5, 3.5)  # notes per onset: bucket k+1 up to EDGES[k], 5 = more
NO_NOTES = 0  # the polyphony bucket of a bar without notes
PIECE_DROPOUT = 0.2  # probability that a piece keeps no control token at all
TOKEN_KEEP = 0.8  # otherwise, probability that each control token of each bar is kept
ROOT_MATCH_BONUS = 0.1  # added to a template's cosine when its root is the chord's own root
ANNOTATION_FILE = POP909_CHORDS  # POP909's chord annotation, beside each song's MIDI file
DENSITY_FORMS = "notes per bar, a whole number >= 0 (e.g. 8), or one per bar: '4 8 16 8'"
POLYPHONY_FORMS = (
    "notes per onset, a number >= 1 (1 = one note at a time; e.g. 2), or one per bar: '1 2 1.5 3'"
)


# --------------------------------------------------------------------------- vocabulary


def control_names(names: Iterable[str] | None) -> tuple[str, ...]:
    """The controls asked for (``["density", "chords"]``), checked, in the stream's order."""
    asked = list(names or ())
    for name in asked:
        if name not in CONTROLS:
            raise choice_error("controls", name, list(CONTROLS))
    return tuple(name for name in CONTROLS if name in asked)


def chord_values() -> list[str]:
    """The 85 values of ``Chord`` tokens: ``N``, then ``C:maj``, ``C:min`` ... ``B:min7``."""
    return [NO_CHORD] + [f"{root}:{q}" for root in SHARP_NAMES for q in CHORD_QUALITIES.values()]


def values_of(name: str) -> list[str]:
    """The values of control ``name``'s tokens, in vocabulary order."""
    if name == "chords":
        return chord_values()
    edges = DENSITY_EDGES if name == "density" else POLYPHONY_EDGES
    return [str(k) for k in range(len(edges) + 1 + (name == "polyphony"))]


def control_tokens(names: Iterable[str]) -> list[str]:
    """The token strings of the controls ``names``: ``Chord_N``, ..., ``Polyphony_5``."""
    return [f"{CONTROLS[n]}_{v}" for n in control_names(names) for v in values_of(n)]


def add_control_tokens(tokenizer: Any, names: Iterable[str]) -> None:
    """Add the controls' tokens to a MidiTok tokenizer's vocabulary, after its own ids."""
    if getattr(tokenizer, "is_trained", False):
        raise MidiforgeError("controls: not with BPE; prepare without bpe_vocab to use controls")
    for token in control_tokens(names):
        if token not in tokenizer.vocab:
            tokenizer.add_to_vocab(token)


def vocab_controls(vocab: dict[str, int]) -> dict[str, dict[str, int]]:
    """Control name → {token value → id}, for each control whose tokens ``vocab`` holds."""
    out = {}
    for name, kind in CONTROLS.items():
        ids = {v: vocab.get(f"{kind}_{v}") for v in values_of(name)}
        if all(i is not None for i in ids.values()):
            out[name] = ids
    return out


# --------------------------------------------------------------------------- chords → values


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Unit vectors ``(84, 12)``, weights, roots and values of every chord of the vocabulary."""
    vectors, weights, roots, values = [], [], [], []
    for root in range(N_CLASSES):
        for suffix, quality in CHORD_QUALITIES.items():
            steps = DETECT_QUALITIES[suffix]
            v = np.zeros(N_CLASSES)
            v[[(root + s) % N_CLASSES for s in steps]] = 1.0
            vectors.append(v / np.linalg.norm(v))
            weights.append(SEVENTH_PENALTY if len(steps) > 3 else 1.0)
            roots.append(root)
            values.append(f"{SHARP_NAMES[root]}:{quality}")
    return np.array(vectors), np.array(weights), np.array(roots), values


_DETECTED = {SHARP_NAMES[r] + s: f"{SHARP_NAMES[r]}:{q}" for r in range(N_CLASSES)
             for s, q in CHORD_QUALITIES.items()} | {NO_CHORD: NO_CHORD}  # fmt: skip


def chord_value(tones: Iterable[int], root: int | None) -> str:
    """A chord's tones (and root) → the nearest ``Chord`` value (``N`` without tones).

    The detector's rule on the chord's own tones: cosine with each template (four-note ones
    times :data:`~midiforge.chords.SEVENTH_PENALTY`), plus :data:`ROOT_MATCH_BONUS` for the
    template on the chord's root, so ``Gsus4`` reads as ``G:maj``, ``C:maj6`` as ``C:maj``
    and ``C:9`` as ``C:7``; a triad or seventh of the vocabulary reads as itself.
    """
    tones = sorted(set(tones))
    if not tones:
        return NO_CHORD
    vectors, weights, roots, values = _templates()
    h = np.zeros(N_CLASSES)
    h[tones] = 1.0
    scores = vectors @ (h / np.linalg.norm(h)) * weights + ROOT_MATCH_BONUS * (roots == root)
    return values[int(scores.argmax())]


def progression_values(text: str) -> list[str]:
    """A progression as typed (``"Am F C G"``) → one ``Chord`` value per bar."""
    return [chord_value(c.tones, c.root) for c in progression(text)]


# --------------------------------------------------------------------------- buckets


def density_bucket(notes: np.ndarray | int) -> np.ndarray:
    """Pitched notes per bar → ``Density`` bucket (0 | 1-2 | 3-4 | 5-8 | 9-16 | 17-32 | 33+)."""
    return np.searchsorted(DENSITY_EDGES, np.asarray(notes), side="left")


def polyphony_bucket(per_onset: np.ndarray | float) -> np.ndarray:
    """Mean notes per onset (>= 1) → ``Polyphony`` bucket 1..5 (1 | ≤1.5 | ≤2.5 | ≤3.5 | more)."""
    return np.searchsorted(POLYPHONY_EDGES, np.asarray(per_onset), side="left") + 1


def _numbers(text: str, name: str, forms: str, low: float, whole: bool) -> list[float]:
    """``"4 8, 16 | 8"`` → ``[4, 8, 16, 8]``; a one-line error naming the forms otherwise."""
    words = split_progression(text.replace(",", " "))
    try:
        values = [float(w) for w in words]
    except ValueError:
        values = []
    bad = not values or any(not np.isfinite(v) or v < low or (whole and v != int(v))
                            for v in values)  # fmt: skip
    if bad:
        raise MidiforgeError(f"{name}: {text!r} is not accepted; give {forms}, repeated when "
                             "the piece is longer")  # fmt: skip
    return values


def parse_density(text: str) -> str:
    """``--density`` as typed → its numbers joined by spaces, each checked."""
    return " ".join(str(int(v)) for v in _numbers(text, "density", DENSITY_FORMS, 0, True))


def parse_polyphony(text: str) -> str:
    """``--polyphony`` as typed → its numbers joined by spaces, each checked."""
    return " ".join(f"{v:g}" for v in _numbers(text, "polyphony", POLYPHONY_FORMS, 1, False))


def request_values(name: str, text: str) -> list[str]:
    """A request (``--chords`` / ``--density`` / ``--polyphony`` text) → token values per bar."""
    if name == "chords":
        return progression_values(text)
    if name == "density":
        return [str(int(b)) for b in density_bucket([int(v) for v in text.split()])]
    return [str(int(b)) for b in polyphony_bucket([float(v) for v in text.split()])]


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class BarLabels:
    """One value per bar of each control (token values, as in ``Chord_<value>``)."""

    chords: list[str]
    density: list[str]
    polyphony: list[str]
    annotated: bool  # the chords came from an annotation, not the detector

    def __len__(self) -> int:
        return len(self.chords)


def find_annotation(source: Path) -> Path | None:
    """The chord annotation of a source MIDI file, if there is one: ``NNN.chord_midi.txt``
    beside ``NNN.mid`` (the copies :func:`midiforge.data.corpora.build_corpus` writes, moved
    onto their bars) or POP909's own ``chord_midi.txt`` in the song's folder."""
    source = Path(source)
    for path in (source.with_name(source.stem + CHORDS_SUFFIX), source.with_name(ANNOTATION_FILE)):
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1024)
def _annotated_value(label: str) -> str:
    """A Harte label → its ``Chord`` value (a song repeats a few dozen labels many times)."""
    return chord_value(harte_tones(label), harte_root(label))


def annotated_chords(score: Any, rows: Sequence[tuple[float, float, str]]) -> list[str]:
    """Per bar of ``score``, the value of the annotated chord covering most of it (``N`` where
    none does); ``rows`` are :func:`~midiforge.chords.read_chord_labels`'s, in seconds."""
    bounds = bar_bounds(score)  # (B, 2) ticks
    if not rows or not len(bounds):
        return [NO_CHORD] * len(bounds)
    times = seconds_to_ticks(score, np.array([(a, b) for a, b, _ in rows], np.float64))  # (A, 2)
    lo = np.maximum(times[:, 0][:, None], bounds[:, 0][None, :])
    hi = np.minimum(times[:, 1][:, None], bounds[:, 1][None, :])
    overlap = np.maximum(hi - lo, 0)  # (A, B)
    values = [_annotated_value(label) for _, _, label in rows]
    best = overlap.argmax(axis=0)
    return [values[a] if overlap[a, b] > 0 else NO_CHORD for b, a in enumerate(best.tolist())]


def _per_bar(starts: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """How many of ``ticks`` fall in each bar (bar ``k`` from ``starts[k]`` to the next)."""
    bar = np.searchsorted(starts, ticks, side="right") - 1
    return np.bincount(bar[bar >= 0], minlength=len(starts))[: len(starts)]


def bar_labels(score: Any, annotation: Sequence[tuple[float, float, str]] | None = None) -> (
    BarLabels
):  # fmt: skip
    """The control values of every bar of ``score`` (module docstring), ``annotation`` the rows
    of its chord annotation (None: the detector names the chords)."""
    bounds = bar_bounds(score)
    notes = pitched_notes(score)  # (n, 4): program, pitch, start, end
    onsets = notes[:, 2]
    starts = bounds[:, 0]
    count = _per_bar(starts, onsets)  # pitched notes starting in each bar
    n_onsets = _per_bar(starts, np.unique(onsets))  # an onset lies in one bar: count it there
    per_onset = count / np.maximum(n_onsets, 1)
    poly = np.where(count > 0, polyphony_bucket(np.maximum(per_onset, 1.0)), NO_NOTES)
    if annotation is not None:
        chords = annotated_chords(score, annotation)
    else:
        chords = [_DETECTED[label] for label in detect_chords(bar_histograms(score))]
    return BarLabels(chords, [str(int(d)) for d in density_bucket(count)],
                     [str(int(p)) for p in poly], annotation is not None)  # fmt: skip


# --------------------------------------------------------------------------- the stream


def insertion_points(ids: np.ndarray, bar_id: int, timesig_ids: np.ndarray) -> np.ndarray:
    """Per ``Bar`` id of ``ids``, the index its controls go to: after it, or after its
    ``TimeSig`` when one follows it."""
    bars = np.flatnonzero(ids == bar_id)
    after = bars + 1
    is_sig = np.zeros(int(max(ids.max(initial=0), timesig_ids.max(initial=0))) + 1, bool)
    is_sig[timesig_ids] = True  # a lookup table: np.isin sorts both arrays every call
    has_sig = np.zeros(len(bars), bool)
    inside = after < len(ids)
    has_sig[inside] = is_sig[ids[after[inside]]]
    return after + has_sig


def insert_controls(ids: np.ndarray, points: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``ids`` with ``tokens[k]`` ``(n_bars, C)`` put at ``points[k]``, in column order; a
    negative id is a token left out."""
    keep = tokens >= 0
    return np.insert(ids, np.repeat(points, keep.sum(axis=1)), tokens[keep]).astype(ids.dtype)


def kept(n_bars: int, n_controls: int, seed: str) -> np.ndarray:
    """``(n_bars, n_controls)`` bool: the control tokens a piece keeps (module docstring);
    ``seed`` is its hex content hash."""
    rng = np.random.default_rng(int(seed, 16))
    if rng.random() < PIECE_DROPOUT:
        return np.zeros((n_bars, n_controls), bool)
    return rng.random((n_bars, n_controls)) < TOKEN_KEEP


def bar_control_ids(tokenizer: Any, labels: BarLabels, names: Sequence[str], n_bars: int) -> (
    np.ndarray
):  # fmt: skip
    """``(n_bars, len(names))`` ids of each bar's control tokens; bars past the labels (a
    time signature after the last note) get ``Chord_N``, ``Density_0``, ``Polyphony_0``."""
    vocab = tokenizer.vocab
    out = np.empty((n_bars, len(names)), np.int64)
    for c, name in enumerate(names):
        values = getattr(labels, name)[:n_bars]
        values = values + [values_of(name)[0]] * (n_bars - len(values))
        out[:, c] = [vocab[f"{CONTROLS[name]}_{v}"] for v in values]
    return out


def encode_with_controls(tokenizer: Any, score: Any, names: Iterable[str], *, seed: str,
                         source: Path | None = None) -> np.ndarray:  # fmt: skip
    """A cleaned score's token ids (:func:`~midiforge.data.encode.score_to_array`) with each
    bar's control tokens, after dropout; ``source`` is the file it was read from, whose
    annotation (if any) names the chords (None: the detector does, as for a file whose
    silences ``prepare`` shortened: its annotation's clock no longer fits)."""
    names = control_names(names)
    score = tokenizer.preprocess_score(score)  # once: the labels' bars are the stream's
    ids = score_to_array(tokenizer, score, preprocessed=True)
    path = find_annotation(source) if source is not None else None
    labels = bar_labels(score, read_chord_labels(path) if path is not None else None)
    vocab = tokenizer.vocab
    timesigs = np.array([i for t, i in vocab.items() if t.startswith("TimeSig_")], np.int64)
    points = insertion_points(ids, vocab["Bar_None"], timesigs)
    tokens = bar_control_ids(tokenizer, labels, names, len(points))
    tokens[~kept(len(points), len(names), seed)] = -1
    return insert_controls(ids, points, tokens)
