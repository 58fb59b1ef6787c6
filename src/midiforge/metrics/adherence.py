"""Did the music do what was asked? Key, range, polyphony and length, measured on MIDI files.

The figures ``evaluate --generated`` reports beside a request (``--key``, ``--range``,
``--max-polyphony``, ``--bars``), each read from the written file, so they check the samplers
rather than repeat them:

* key adherence — the share of pitched note-time (durations summed) on the key's scale;
* range — the share of pitched notes inside the range of their program;
* polyphony — the most pitched notes sounding at once (start <= t < end);
* length — the piece's length in bars, from tick 0 to the file's end (its last event: a note
  end or the end marker ``generate`` writes on the last bar line), walking its time signatures.

Drums are left out of the first three: a drum hit's "pitch" picks a sound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from midiforge.io.midi import is_midi_path, load_midi
from midiforge.pitches import program_row, range_table, scale_pitches

QUARTERS_PER_WHOLE = 4


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


def key_adherence(score: Any, key: str) -> float | None:
    """Share of pitched note-time on ``key``'s scale (None: no pitched notes)."""
    notes = pitched_notes(score)
    time = (notes[:, 3] - notes[:, 2]).astype(np.float64)
    if time.sum() <= 0:
        return None
    on = np.array(scale_pitches(key))[notes[:, 1]]
    return float(time[on].sum() / time.sum())


def range_adherence(score: Any, range_text: str) -> float | None:
    """Share of pitched notes inside their program's range (None: no pitched notes)."""
    notes = pitched_notes(score)
    if len(notes) == 0:
        return None
    table = range_table(range_text)
    return float(table[program_row(notes[:, 0]), notes[:, 1]].mean())


def polyphony(score: Any) -> int:
    """The most pitched notes sounding at one moment (a note's end frees its voice)."""
    notes = pitched_notes(score)
    if len(notes) == 0:
        return 0
    times = np.concatenate([notes[:, 2], notes[:, 3]])
    steps = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((steps, times))  # at equal times, ends (-1) before starts
    return int(np.cumsum(steps[order]).max())


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


def length_bars(score: Any) -> float:
    """Bars from tick 0 to the file's end, a fraction when it ends inside a bar."""
    end = score.end()
    sections = bar_lines(score)
    bars = 0.0
    for i, (tick, bar) in enumerate(sections):
        if tick >= end:
            break
        upto = min(sections[i + 1][0], end) if i + 1 < len(sections) else end
        bars += (upto - tick) / bar
    return bars


def piece_adherence(
    score: Any,
    *,
    key: str | None = None,
    range: str | None = None,
    max_polyphony: int | None = None,
    bars: int | None = None,
) -> dict[str, Any]:
    """The figures of one score for what was asked (only those asked)."""
    out: dict[str, Any] = {}
    if key:
        out["key_adherence"] = key_adherence(score, key)
    if range:
        out["in_range"] = range_adherence(score, range)
    if max_polyphony is not None:
        out["polyphony"] = polyphony(score)
        out["polyphony_held"] = out["polyphony"] <= max_polyphony
    if bars is not None:
        out["bars"] = round(length_bars(score), 4)
        out["length_held"] = abs(out["bars"] - bars) < 1e-3
    return out


def folder_adherence(folder: str | Path, **asked: Any) -> dict[str, Any]:
    """Per-file figures of every MIDI file under ``folder`` and their mean / share held.

    ``asked``: ``key``, ``range``, ``max_polyphony``, ``bars`` (as
    :func:`piece_adherence`). Returns ``{"asked": ..., "per_file": [...], "summary": {...}}``.
    """
    folder = Path(folder)
    per_file = []
    for path in sorted(p for p in folder.rglob("*") if is_midi_path(p)):
        figures = piece_adherence(load_midi(path), **asked)
        per_file.append({"file": str(path.relative_to(folder)), **figures})
    summary: dict[str, Any] = {}
    for name in ("key_adherence", "in_range", "polyphony", "bars"):
        values = [f[name] for f in per_file if f.get(name) is not None]
        if values:
            summary[f"mean_{name}"] = float(np.mean(values))
    for name in ("polyphony_held", "length_held"):
        values = [f[name] for f in per_file if name in f]
        if values:
            summary[f"share_{name}"] = float(np.mean(values))
    return {"asked": {k: v for k, v in asked.items() if v is not None}, "per_file": per_file,
            "summary": summary}  # fmt: skip


def report_lines(result: dict[str, Any]) -> list[str]:
    """The report.md section of ``result["adherence"]`` (none when nothing was asked)."""
    found = result.get("adherence")
    if not found:
        return []
    asked = ", ".join(f"{k} {v}" for k, v in found["asked"].items())
    lines = ["## Adherence to the request", "", f"Asked: {asked}.", "", "| figure | value |",
             "| --- | --- |"]  # fmt: skip
    lines += [f"| {name} | {value:.4g} |" for name, value in found["summary"].items()]
    return [*lines, ""]
