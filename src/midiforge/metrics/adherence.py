"""Did the music do what was asked? Key, range, polyphony and length, measured on MIDI files.

The figures ``evaluate --generated`` reports beside a request (``--key``, ``--range``,
``--max-polyphony``, ``--bars``), each read from the written file, so they check the samplers
rather than repeat them:

* key adherence — the share of pitched note-time (durations summed) on the key's scale;
* range — the share of pitched notes inside the range of their program;
* polyphony — the most pitched notes sounding at once (start <= t < end);
* length — the piece's length in bars, from tick 0 to the file's end (its last event: a note
  end or the end marker ``generate`` writes on the last bar line), walking its time signatures;
* chord adherence — per bar, the share of pitched note-time (each note clipped to the bar) on
  the tones of the chord asked for that bar (:mod:`midiforge.chords`; a progression shorter
  than the piece repeats), averaged over the bars that have a chord and notes. Its ceiling is
  the same figure for real music against its own annotations (:func:`annotated_adherence`:
  POP909's ``chord_midi.txt``, note-time measured against the chord sounding at each moment,
  per bar), and :func:`detected_adherence` measures against the chord detector's labels.

Drums are left out of the first three: a drum hit's "pitch" picks a sound. A score's bar
lines, note-time per bar and clock come from :mod:`midiforge.bars`, which the learned chord
labels of ``prepare --controls`` share (:mod:`midiforge.data.controls`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from midiforge.bars import (
    bar_bounds,
    bar_histograms,
    bar_lines,
    note_overlaps,
    pitched_notes,
    seconds_to_ticks,
)
from midiforge.chords import (
    N_CLASSES,
    detect_chords,
    progression,
    read_chord_annotation,
    tone_table,
)
from midiforge.io.midi import is_midi_path, load_midi
from midiforge.pitches import program_row, range_table, scale_pitches


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


def bar_shares(notes: np.ndarray, spans: np.ndarray, tones: np.ndarray, bars: np.ndarray,
               n_bars: int) -> np.ndarray:  # fmt: skip
    """Per bar, the share of note-time inside its chord spans that lies on the span's tones.

    ``spans`` ``(S, 2)`` ticks, ``tones`` ``(S, 12)`` bool (spans without tones are skipped),
    ``bars`` ``(S,)`` the bar of each span. NaN for a bar with no chord or no note-time.
    """
    keep = tones.any(axis=1)
    spans, tones, bars = spans[keep], tones[keep], bars[keep]
    time = note_overlaps(notes, spans)  # (n, S)
    on = tones[:, notes[:, 1] % N_CLASSES].T  # (n, S): the note's pitch class is a tone
    total = np.bincount(bars, time.sum(axis=0), minlength=n_bars)
    hit = np.bincount(bars, (time * on).sum(axis=0), minlength=n_bars)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hit / total, np.nan)


def _mean(shares: np.ndarray) -> float | None:
    return float(np.nanmean(shares)) if np.isfinite(shares).any() else None


def chord_adherence(score: Any, chords: str) -> float | None:
    """Mean over bars with a chord of the share of pitched note-time on the bar's chord tones
    (``chords``: a progression, bar ``k`` playing chord ``k % len``; None: no such bar)."""
    bounds = bar_bounds(score)
    table = tone_table(progression(chords))
    tones = table[np.arange(len(bounds)) % len(table)]
    return _mean(bar_shares(pitched_notes(score), bounds, tones, np.arange(len(bounds)),
                            len(bounds)))  # fmt: skip


def detected_chords(score: Any) -> list[str]:
    """The chord detector's label per bar (:func:`midiforge.chords.detect_chords`)."""
    return detect_chords(bar_histograms(score))


def detected_adherence(score: Any) -> float | None:
    """:func:`chord_adherence` against the detector's own label of each bar."""
    labels = detected_chords(score)
    return chord_adherence(score, " ".join(labels)) if labels else None


def _annotated_pieces(score: Any, annotation: list[tuple[float, float, frozenset[int]]]):
    """Each annotated span cut at the bar lines: ``(pieces (S, 2) ticks, tones (S, 12), bar)``."""
    bounds = bar_bounds(score)
    times = seconds_to_ticks(score, np.array([(a, b) for a, b, _ in annotation]))  # (A, 2)
    marks = np.zeros((len(annotation), N_CLASSES), bool)
    for row, (_, _, tones) in enumerate(annotation):
        marks[row, list(tones)] = True
    lo = np.maximum(times[:, 0][:, None], bounds[:, 0][None, :])
    hi = np.minimum(times[:, 1][:, None], bounds[:, 1][None, :])
    span, bar = np.nonzero(hi > lo)
    return np.stack([lo[span, bar], hi[span, bar]], axis=1), marks[span], bar


def annotated_adherence(score: Any, annotation: list[tuple[float, float, frozenset[int]]]) -> (
    float | None
):  # fmt: skip
    """Chord adherence of real music against its annotation (:func:`read_chord_annotation`
    rows, in seconds): per bar, note-time measured against the chord sounding at each moment."""
    n_bars = len(bar_bounds(score))
    if not annotation or not n_bars:
        return None
    pieces, tones, bar = _annotated_pieces(score, annotation)
    return _mean(bar_shares(pitched_notes(score), pieces, tones, bar, n_bars))


def detector_agreement(score: Any, annotation: list[tuple[float, float, frozenset[int]]]) -> (
    float | None
):  # fmt: skip
    """Share of bars whose detected chord agrees with the annotated chord covering most of the
    bar: one's tones contain the other's (C and Cmaj7 agree, C and Am do not). Bars the
    annotation leaves without a chord, or without notes, are skipped."""
    labels = detected_chords(score)
    if not annotation or not labels:
        return None
    pieces, tones, bar = _annotated_pieces(score, annotation)
    found = tone_table(progression(" ".join(labels)))  # (bars, 12)
    agree = []
    for b in range(len(labels)):
        mine = np.flatnonzero(bar == b)
        if not len(mine) or not found[b].any():
            continue
        main = tones[mine[np.argmax(pieces[mine, 1] - pieces[mine, 0])]]
        if main.any():
            agree.append(bool((found[b] <= main).all() or (main <= found[b]).all()))
    return float(np.mean(agree)) if agree else None


def pop909_ceiling(folders: list[str | Path]) -> dict[str, Any]:
    """The chord-adherence ceiling of POP909 song folders (``NNN/NNN.mid`` + ``chord_midi.txt``):
    per song against its annotation and against the detector, the detector's agreement with the
    annotation (:func:`detector_agreement`), and the means of the three."""
    songs = []
    for folder in map(Path, folders):
        score = load_midi(folder / f"{folder.name}.mid")
        annotation = read_chord_annotation(folder / "chord_midi.txt")
        songs.append({"song": folder.name, "annotated": annotated_adherence(score, annotation),
                      "detected": detected_adherence(score),
                      "agreement": detector_agreement(score, annotation)})  # fmt: skip
    out: dict[str, Any] = {"songs": songs}
    for name in ("annotated", "detected", "agreement"):
        values = [s[name] for s in songs if s[name] is not None]
        out[name] = float(np.mean(values)) if values else None
    return out


def piece_adherence(
    score: Any,
    *,
    key: str | None = None,
    range: str | None = None,
    max_polyphony: int | None = None,
    bars: int | None = None,
    chords: str | None = None,
) -> dict[str, Any]:
    """The figures of one score for what was asked (only those asked)."""
    out: dict[str, Any] = {}
    if chords:
        out["chord_adherence"] = chord_adherence(score, chords)
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

    ``asked``: ``key``, ``range``, ``max_polyphony``, ``bars``, ``chords`` (as
    :func:`piece_adherence`). Returns ``{"asked": ..., "per_file": [...], "summary": {...}}``.
    """
    folder = Path(folder)
    per_file = []
    for path in sorted(p for p in folder.rglob("*") if is_midi_path(p)):
        figures = piece_adherence(load_midi(path), **asked)
        per_file.append({"file": str(path.relative_to(folder)), **figures})
    summary: dict[str, Any] = {}
    for name in ("key_adherence", "in_range", "polyphony", "bars", "chord_adherence"):
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
