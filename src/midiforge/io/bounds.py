"""What a rendering may cost: checks on a score, its length in seconds, and free disk space.

A MIDI file is a few hundred bytes; what it asks for is not. One note at tick 2**28 is three
days of audio, a tick-per-quarter of 0 makes every time a division by zero, and 100 stacked
unisons once made FluidSynth render forever. The renderers read their limits from here so a
hostile or broken file costs at most a bounded amount of time and disk, and fails with one
line instead of a traceback.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import symusic

from midiforge.errors import MidiforgeError

DEFAULT_MAX_SECONDS = 600.0  # ten minutes: a song, not a day of silence
RELEASE_TAIL_SECONDS = 4.0  # after the last note-off: GM releases, FluidSynth's 2 s grace
DEFAULT_TEMPO_MSPQ = 500_000  # 120 quarter notes a minute, the MIDI default
DISK_RESERVE_BYTES = 64 * 2**20  # never fill the disk to its last byte
MAX_DENOMINATOR = 128  # 2**7, the largest a MIDI file can state without wrapping


def check_max_seconds(max_seconds: float) -> float:
    """The cap itself must be a positive, finite number of seconds."""
    if not (isinstance(max_seconds, (int, float)) and math.isfinite(max_seconds)) or (
        max_seconds <= 0
    ):
        raise MidiforgeError(
            f"max_seconds: {max_seconds!r} is not accepted; give a positive number of seconds "
            f"(default {DEFAULT_MAX_SECONDS:g})"
        )
    return float(max_seconds)


def check_renderable(score: symusic.Score, path: str | Path) -> None:
    """Refuse a score no renderer can honestly draw or play, naming what is wrong.

    The values checked are the ones that once turned into a division by zero, negative
    (int32-wrapped) times, or millions of one-tick bars.
    """
    tpq = score.ticks_per_quarter
    if tpq < 1:
        raise MidiforgeError(
            f"{path}: ticks per quarter note is {tpq}; a MIDI file needs 1 or more "
            "(SMPTE time division is not supported)"
        )
    if score.note_num() == 0:
        raise MidiforgeError(f"{path}: has no notes; there is nothing to render")
    for number, track in enumerate(score.tracks, start=1):
        if not len(track.notes):
            continue
        notes = track.notes.numpy()
        if (notes["time"] < 0).any() or (notes["duration"] < 0).any():
            raise MidiforgeError(
                f"{path}: track {number} has note times beyond the 32-bit tick range "
                f"(negative after wrapping, min {int(notes['time'].min())}); not a playable file"
            )
    for ts in score.time_signatures:
        den = ts.denominator
        if ts.numerator < 1 or den < 1 or den > MAX_DENOMINATOR or den & (den - 1):
            raise MidiforgeError(
                f"{path}: time signature {ts.numerator}/{den} at tick {ts.time} is not "
                f"accepted; the numerator must be ≥ 1 and the denominator a power of two "
                f"from 1 to {MAX_DENOMINATOR}"
            )
    for tempo in score.tempos:
        if tempo.mspq < 1:
            raise MidiforgeError(
                f"{path}: tempo at tick {tempo.time} is {tempo.mspq} µs per quarter note; "
                "it must be 1 or more"
            )


def notes_end_tick(score: symusic.Score) -> int:
    """Tick of the last note-off (meta events far past the notes do not count)."""
    ends = [
        int((n["time"] + n["duration"].astype(np.int64)).max())
        for n in (t.notes.numpy() for t in score.tracks if len(t.notes))
    ]
    return max(ends, default=0)


def notes_end_seconds(score: symusic.Score) -> float:
    """Seconds of the last note-off, through symusic's tempo map."""
    seconds = score.to("second")
    ends = [
        float((n["time"] + n["duration"]).max())
        for n in (t.notes.numpy() for t in seconds.tracks if len(t.notes))
    ]
    end = max(ends, default=0.0)
    if not math.isfinite(end):
        raise MidiforgeError(f"the notes end at {end} seconds; the tempo map is broken")
    return end


def tick_at_seconds(score: symusic.Score, seconds: float) -> float:
    """The tick reached after ``seconds``, walking the tempo changes (120 BPM before the first)."""
    tpq = score.ticks_per_quarter
    tick, elapsed, mspq = 0, 0.0, DEFAULT_TEMPO_MSPQ
    for tempo in sorted(score.tempos, key=lambda t: t.time):
        span = (tempo.time - tick) * mspq / 1e6 / tpq
        if elapsed + span >= seconds:
            break
        tick, elapsed, mspq = tempo.time, elapsed + span, tempo.mspq
    return tick + (seconds - elapsed) * 1e6 * tpq / mspq


def check_free_space(folder: str | Path, needed_bytes: int, what: str = "output") -> None:
    """Refuse to start a write of ``needed_bytes`` into ``folder`` that the disk cannot hold."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the folder may not exist yet; its disk is its nearest parent's
    free = shutil.disk_usage(probe).free
    if needed_bytes + DISK_RESERVE_BYTES > free:
        raise MidiforgeError(
            f"{folder}: not enough free disk space for the {what}: it needs "
            f"{_size(needed_bytes)} (plus {_size(DISK_RESERVE_BYTES)} kept free), "
            f"{_size(free)} is available; free some space, write elsewhere, or lower max_seconds"
        )


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - unreachable


def merge_unisons(score: symusic.Score) -> symusic.Score | None:
    """A copy where notes of one track with the same pitch and onset are one note, or None.

    Two presses of the same key at the same instant are one press. FluidSynth disagrees in
    a costly way: each note-on releases every still-sounding voice of that key, so n stacked
    unisons queue about n²/2 release events in one audio block; past its event queue
    (64 × polyphony = 16384 events, reached near n = 90) it drops events ("Ringbuffer full"),
    voices whose release was dropped sound for ever, and the player, which plays on until no
    voice is active, never stops. Merged, the note keeps the longest duration and the highest
    velocity of its stack. None when nothing is stacked, so the original file is played as is.
    """
    merged = score.copy()
    changed = False
    for track in merged.tracks:
        if len(track.notes) < 2:
            continue
        n = track.notes.numpy()
        keys = n["time"].astype(np.int64) * 128 + n["pitch"].astype(np.int64)
        unique, first, group = np.unique(keys, return_index=True, return_inverse=True)
        if len(unique) == len(keys):
            continue
        duration = np.zeros(len(unique), np.int32)
        velocity = np.zeros(len(unique), np.int8)
        np.maximum.at(duration, group, n["duration"])
        np.maximum.at(velocity, group, n["velocity"])
        order = np.sort(first)  # keep the file's note order
        slot = group[order]
        track.notes = symusic.Note.from_numpy(
            n["time"][order], duration[slot], n["pitch"][order], velocity[slot]
        )
        changed = True
    return merged if changed else None
