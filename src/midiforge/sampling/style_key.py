"""An unkeyed piece moved into one of its style's own keys.

The shipped models learned from training pieces transposed into every key (``train.augment``),
so a model plays E-flat as readily as D: its folk tunes come out in all twelve keys, while 82 %
of the Nottingham tunes it learned from are in D, G or A major. Transposition taught it music up
to a key; the key itself is what the style adds back. After sampling, each piece whose key
nothing asked for (no ``--key``, primer, chords, infill or melody to harmonize) is read
(:func:`midiforge.chords.notes_key`), a key of the same mode is drawn from those the style's
training pieces are in (``LoadedRun.style_keys``, weighted by how many pieces each holds), and
the pitched notes move by the interval between the two, at most a tritone. Drums stay: their
pitch picks a sound. A piece moves only where every note stays a MIDI pitch inside the asked
``--range``; otherwise it keeps its key.

Why after sampling and not as a mask: the model picks its key from its first notes and keeps
it, so moving the whole piece changes nothing it played relative to itself (intervals, chords,
rhythm); a scale mask would cut its chromatic notes instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from midiforge.chords import N_CLASSES, notes_key
from midiforge.pitches import MIDI_MAX, key_tonic, program_row
from midiforge.schema import ALL_STYLES

log = logging.getLogger(__name__)

SEED_SALT = 0x6B6579  # the draw of keys has its own stream, apart from the model's sampling


def _pitched(score) -> list[tuple[int, dict]]:
    """``(program, its notes as numpy columns)`` of each pitched track with notes."""
    return [(t.program, t.notes.numpy()) for t in score.tracks if not t.is_drum and len(t.notes)]


def piece_key(score, tracks: list[tuple[int, dict]] | None = None) -> str | None:
    """The key of a symusic Score's pitched notes (``tracks``: its :func:`_pitched`, when the
    caller has them); None when it has none."""
    tracks = _pitched(score) if tracks is None else tracks
    if not tracks:
        return None
    pitches = np.concatenate([notes["pitch"] for _, notes in tracks])
    return notes_key(pitches, np.concatenate([notes["duration"] for _, notes in tracks]))


def key_shift(source: str, target: str) -> int:
    """Semitones from ``source``'s tonic to ``target``'s (``"D major"``), in -6..+5."""
    return (key_tonic(target) - key_tonic(source) + 6) % N_CLASSES - 6


def draw_key(counts: Mapping[str, int], mode: str, rng: np.random.Generator) -> str | None:
    """A key of ``mode`` drawn with the weights ``counts`` gives it; None when none has it."""
    keys = [key for key, n in counts.items() if n > 0 and key.split()[1] == mode]
    if not keys:
        return None
    weights = np.array([counts[key] for key in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def style_counts(style_keys: Mapping[str, Mapping[str, int]], style: str | None):
    """The key counts of ``style`` (None: every training piece); {} when the run has none."""
    return dict(style_keys.get(ALL_STYLES if style is None else style) or {})


def _fits(tracks: list[tuple[int, dict]], shift: int, allowed: np.ndarray | None) -> bool:
    """Every pitched note (``tracks``, from :func:`_pitched`) moved by ``shift`` is a MIDI
    pitch the range allows."""
    for program, notes in tracks:
        moved = notes["pitch"].astype(np.int64) + shift
        if moved.min() < 0 or moved.max() > MIDI_MAX:
            return False
        if allowed is not None and not allowed[program_row(program), moved].all():
            return False
    return True


def move_to_style_keys(
    scores: list,
    counts: Mapping[str, int],
    seed: int | None,
    allowed: np.ndarray | None = None,
) -> list[tuple[str, str] | None]:
    """Move each score, in place, into a key drawn from ``counts`` (see the module doc).

    ``seed`` makes the draw reproducible (None: a fresh one); ``allowed`` is the ``(129, 128)``
    pitch table of an asked range (None: any MIDI pitch). Returns per score ``(key it was
    played in, key it is in now)``, or None where it has no pitched note or kept its key
    because no key of its mode was drawn or the move would leave the range.
    """
    rng = np.random.default_rng(None if seed is None else [seed, SEED_SALT])
    moved: list[tuple[str, str] | None] = []
    for i, score in enumerate(scores):
        tracks = _pitched(score)
        played = piece_key(score, tracks)
        target = None if played is None else draw_key(counts, played.split()[1], rng)
        if played is None or target is None:
            moved.append(None)
            continue
        shift = key_shift(played, target)
        if not _fits(tracks, shift, allowed):
            log.info("generate: sample %d stays in %s (%s leaves the range)", i, played, target)
            moved.append(None)
            continue
        for track in score.tracks:
            if not track.is_drum:
                track.shift_pitch(shift, inplace=True)
        moved.append((played, target))
    return moved
