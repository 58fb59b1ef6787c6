"""A score's bars: its bar lines, each note's time inside each bar, and its clock in seconds.

What chord adherence measures (:mod:`midiforge.metrics.adherence`) and what the learned chord
labels of ``prepare --controls`` are computed from (:mod:`midiforge.data.controls`) must read the
same bars the same way, so both take them from here. Scores are symusic ``Score`` objects in
ticks; bar lines follow the time signatures (4/4 before the first), a new grid starting at each
change, as MidiTok's REMI encoder counts its ``Bar`` tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from midiforge.chords import N_CLASSES

QUARTERS_PER_WHOLE = 4
DEFAULT_MSPQ = 500_000  # microseconds per quarter note before any tempo event: 120 bpm


def pitched_notes(score: Any) -> np.ndarray:
    """``(n, 4)`` int64 rows ``program, pitch, start, end`` (ticks) of the non-drum notes."""
    parts = []
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        arr = track.notes.numpy()
        start = arr["time"].astype(np.int64)
        rows = [np.full(len(start), track.program), arr["pitch"], start, start + arr["duration"]]
        parts.append(np.stack(rows, axis=1).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)


def bar_lines(score: Any) -> list[tuple[int, int]]:
    """``(tick, ticks per bar)`` of each time-signature section (4/4 before the first)."""
    tpq = score.ticks_per_quarter
    sections = [(0, tpq * QUARTERS_PER_WHOLE)]
    for ts in sorted(score.time_signatures, key=lambda t: t.time):
        bar = tpq * QUARTERS_PER_WHOLE * ts.numerator // ts.denominator
        if ts.time == sections[-1][0]:
            sections[-1] = (ts.time, bar)
        else:
            sections.append((ts.time, bar))
    return sections


def bar_bounds(score: Any) -> np.ndarray:
    """``(n_bars, 2)`` int64 start and end ticks of every bar up to the file's end."""
    end, sections = score.end(), bar_lines(score)
    bounds = []
    for i, (tick, bar) in enumerate(sections):
        upto = min(sections[i + 1][0], end) if i + 1 < len(sections) else end
        starts = np.arange(tick, max(upto, tick), bar, dtype=np.int64)
        bounds.append(np.stack([starts, starts + bar], axis=1))
    return np.concatenate(bounds) if bounds else np.zeros((0, 2), np.int64)


def note_overlaps(notes: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """``(n_notes, n_spans)`` ticks each pitched note sounds inside each span ``[start, end)``."""
    lo = np.maximum(notes[:, 2][:, None], spans[:, 0][None, :])
    hi = np.minimum(notes[:, 3][:, None], spans[:, 1][None, :])
    return np.maximum(hi - lo, 0).astype(np.float64)


def bar_histograms(score: Any) -> np.ndarray:
    """``(n_bars, 12)`` pitched note-time (ticks, clipped to the bar) per pitch class."""
    notes, bounds = pitched_notes(score), bar_bounds(score)
    time = note_overlaps(notes, bounds)  # (n, bars)
    onehot = np.eye(N_CLASSES)[notes[:, 1] % N_CLASSES]  # (n, 12)
    return time.T @ onehot


def seconds_to_ticks(score: Any, seconds: np.ndarray) -> np.ndarray:
    """Times in seconds → ticks of ``score`` (walking its tempo map; 120 bpm before any)."""
    tpq = score.ticks_per_quarter
    tempos = sorted(score.tempos, key=lambda t: t.time)
    ticks = [0] + [t.time for t in tempos if t.time > 0]
    at_zero = [t.mspq for t in tempos if t.time == 0]
    mspq = [at_zero[-1] if at_zero else DEFAULT_MSPQ]
    mspq += [t.mspq for t in tempos if t.time > 0]
    secs = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * np.array(mspq[:-1]) / 1e6 / tpq)])
    seconds = np.asarray(seconds, np.float64)
    i = np.searchsorted(secs, seconds, side="right") - 1
    per_second = tpq * 1e6 / np.array(mspq, np.float64)
    return np.rint(np.array(ticks)[i] + (seconds - secs[i]) * per_second[i]).astype(np.int64)
