"""MIDI → piano-roll PNG through matplotlib: instruments in colour, drums as hits in a lane.

Beats run across, pitches up, bar lines from the time signatures in grey. Every pitched track
is drawn in its instrument's colour (:func:`instrument_colour`): one hue per General MIDI family
(pianos blue, guitars orange, basses green, strings red, ...), lighter or darker per program in
the family, so a colour means the same instrument in every picture; several tracks of one
program get shades of it. The legend names the instruments
(:func:`midiforge.instruments.instrument_name`), one entry per program. Drum hits have no
pitch, so they are not boxes on the pitch axis: they are short ticks at their onsets in a lane
under the roll, one row per drum sound present, named after the GM percussion map.

The picture is bounded (limits in :mod:`midiforge.io.bounds`): always ``PNG_SIZE_INCHES`` at
``PNG_DPI`` (1400 × 600 pixels), at most ``max_seconds`` and ``MAX_NOTES_DRAWN`` notes,
``MAX_BAR_LINES`` bar lines and ``MAX_LEGEND_ENTRIES`` legend entries. matplotlib's Agg canvas
is used directly, so no GUI backend or global pyplot state is touched.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from midiforge.errors import naming
from midiforge.instruments import DRUMS, FAMILY_SIZE, instrument_name
from midiforge.io.bounds import (
    DEFAULT_MAX_SECONDS,
    check_max_seconds,
    check_renderable,
    notes_end_seconds,
    notes_end_tick,
    tick_at_seconds,
)
from midiforge.io.midi import load_midi

log = logging.getLogger(__name__)

PNG_DPI = 100
PNG_SIZE_INCHES = (14.0, 6.0)
NOTE_HEIGHT_SEMITONES = 0.8
PITCH_MARGIN_SEMITONES = 2
MAX_NOTES_DRAWN = 100_000  # about a second of drawing; a 10-minute song has a few thousand
MAX_BAR_LINES = 700  # half the width in pixels: more bar lines are a grey wash; thin them
MAX_LEGEND_ENTRIES = 20  # one column of the 600-pixel height; more are summed up in one line
DRUM_LANE_SHARE = (3, 1)  # height of the pitched roll : the drum lane (when both are drawn)
DRUM_HIT_POINTS = 6.0  # length of a hit tick, at most (it shrinks to fit its row)
DRUM_ROW_FILL = 0.8  # share of a lane row a tick spans
DRUM_LEAD_SHARE = 0.004  # with drums the beats axis starts this share of the span before 0
PITCH_NAMES = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")

# One hue per GM family, in family order (Kelly's colours of maximum contrast, teal for the
# synth leads, which Kelly's pinks would confuse with the ensembles), and drums
FAMILY_COLOURS = (
    "#0067a5", "#a1caf1", "#875692", "#f38400", "#008856", "#be0032", "#e68fac", "#f3c300",
    "#882d17", "#8db600", "#00a6a6", "#604e97", "#c2b280", "#654522", "#e25822", "#2b3d26",
)  # fmt: skip
DRUM_COLOUR = "#333333"
# Per program within its family (program % 8): towards white (> 0) or black (< 0)
PROGRAM_SHADES = (0.0, 0.25, -0.25, 0.4, -0.4, 0.12, -0.12, 0.32)  # ≤ 0.4: still the hue
TRACK_SHADES = (0.0, -0.35, 0.35, -0.6)  # the 1st, 2nd, ... track of one program, cycled

# General MIDI Level 1 percussion map, key 35 first
GM_DRUM_FIRST = 35
GM_DRUM_NAMES = (
    "Acoustic Bass Drum", "Bass Drum 1", "Side Stick", "Acoustic Snare", "Hand Clap",
    "Electric Snare", "Low Floor Tom", "Closed Hi-Hat", "High Floor Tom", "Pedal Hi-Hat",
    "Low Tom", "Open Hi-Hat", "Low-Mid Tom", "Hi-Mid Tom", "Crash Cymbal 1", "High Tom",
    "Ride Cymbal 1", "Chinese Cymbal", "Ride Bell", "Tambourine", "Splash Cymbal", "Cowbell",
    "Crash Cymbal 2", "Vibraslap", "Ride Cymbal 2", "Hi Bongo", "Low Bongo", "Mute Hi Conga",
    "Open Hi Conga", "Low Conga", "High Timbale", "Low Timbale", "High Agogo", "Low Agogo",
    "Cabasa", "Maracas", "Short Whistle", "Long Whistle", "Short Guiro", "Long Guiro", "Claves",
    "Hi Wood Block", "Low Wood Block", "Mute Cuica", "Open Cuica", "Mute Triangle",
    "Open Triangle",
)  # fmt: skip


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI number: 60 → ``C4``, 69 → ``A4``."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def drum_name(key: int) -> str:
    """The GM percussion sound of a drum key: 36 → ``Bass Drum 1``; outside the map, ``key 27``."""
    index = key - GM_DRUM_FIRST
    return GM_DRUM_NAMES[index] if 0 <= index < len(GM_DRUM_NAMES) else f"key {key}"


def _shade(rgb: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
    target = 1.0 if amount > 0 else 0.0
    return tuple(c + (target - c) * abs(amount) for c in rgb)  # type: ignore[return-value]


def instrument_colour(program: int, track: int = 0) -> tuple[float, float, float]:
    """RGB of a program's notes: its family's hue, shaded per program and per repeated track.

    ``track`` counts the tracks of the same program (0 for the first), which get shades of
    the instrument's colour so a melody stays apart from its accompaniment.
    """
    from matplotlib.colors import to_rgb

    if program == DRUMS:
        base = to_rgb(DRUM_COLOUR)
    else:
        family = to_rgb(FAMILY_COLOURS[program // FAMILY_SIZE])
        base = _shade(family, PROGRAM_SHADES[program % FAMILY_SIZE])
    return _shade(base, TRACK_SHADES[track % len(TRACK_SHADES)])


@dataclass(frozen=True)
class LegendEntry:
    """One instrument of the legend: its program, label, colour, tracks and notes drawn."""

    program: int
    label: str
    colour: tuple[float, float, float]
    tracks: int
    notes: int


def _track_program(track: symusic.Track) -> int:
    return DRUMS if track.is_drum else int(track.program)


def legend_entries(score: symusic.Score, end_tick: int | None = None) -> list[LegendEntry]:
    """The instruments drawn, one entry per program in the order they first appear, drums last.

    Only notes starting before ``end_tick`` count (None: all). A program on several tracks is
    one entry labelled ``"Overdriven Guitar ×4"``.
    """
    tracks: dict[int, int] = {}
    notes: dict[int, int] = {}
    for track in score.tracks:
        times = track.notes.numpy()["time"] if len(track.notes) else np.zeros(0)
        drawn = int((times < end_tick).sum()) if end_tick is not None else len(times)
        if drawn:
            program = _track_program(track)
            tracks[program] = tracks.get(program, 0) + 1
            notes[program] = notes.get(program, 0) + drawn
    order = [p for p in tracks if p != DRUMS] + ([DRUMS] if DRUMS in tracks else [])
    return [
        LegendEntry(
            program=p,
            label=instrument_name(p) + (f" ×{tracks[p]}" if tracks[p] > 1 else ""),
            colour=instrument_colour(p),
            tracks=tracks[p],
            notes=notes[p],
        )
        for p in order
    ]


def _bar_lines(score: symusic.Score, end_tick: int, limit: int = MAX_BAR_LINES) -> list[int]:
    """Tick of every bar start up to ``end_tick``, following the time-signature changes.

    More than ``limit`` bars are thinned to every k-th bar, so a long piece (or a tiny bar)
    costs at most ``limit`` lines, not millions.
    """
    signatures = sorted(score.time_signatures, key=lambda ts: ts.time) or [
        symusic.TimeSignature(0, 4, 4)
    ]
    if signatures[0].time > 0:
        signatures.insert(0, symusic.TimeSignature(0, 4, 4))
    segments = []  # (start, stop, bar length) per time signature
    for i, ts in enumerate(signatures):
        stop = signatures[i + 1].time if i + 1 < len(signatures) else end_tick + 1
        bar = max(1, round(score.ticks_per_quarter * 4 * ts.numerator / ts.denominator))
        segments.append((ts.time, min(stop, end_tick + 1), bar))
    total = sum(max(0, math.ceil((stop - start) / bar)) for start, stop, bar in segments)
    every = max(1, math.ceil(total / limit))
    bars = [b for start, stop, bar in segments for b in range(start, stop, bar * every)]
    return bars[:: max(1, math.ceil(len(bars) / limit))]  # thousands of signature changes


def _drawn_span(score: symusic.Score, midi_path: Path, max_seconds: float) -> int:
    """The last tick the piano roll shows: the last note-off, at most ``max_seconds`` and
    ``MAX_NOTES_DRAWN`` notes in; a longer piece is drawn up to there, with a warning."""
    end_tick = notes_end_tick(score)
    cap_tick = tick_at_seconds(score, max_seconds)
    onsets = np.sort(
        np.concatenate([t.notes.numpy()["time"] for t in score.tracks if len(t.notes)])
    )
    if len(onsets) > MAX_NOTES_DRAWN and onsets[MAX_NOTES_DRAWN] < min(end_tick, cap_tick):
        stop = int(onsets[MAX_NOTES_DRAWN])
        log.warning(
            "%s has %d notes; the piano roll shows the first %d (up to beat %.0f)",
            midi_path, len(onsets), MAX_NOTES_DRAWN, stop / score.ticks_per_quarter,
        )  # fmt: skip
        return stop
    if end_tick > cap_tick:
        log.warning(
            "%s lasts %.1f s, longer than max_seconds=%g; the piano roll shows its first %g s",
            midi_path, notes_end_seconds(score), max_seconds, max_seconds,
        )  # fmt: skip
        return int(cap_tick)
    return end_tick


def _note_boxes(notes: dict[str, np.ndarray], tpq: int, end_tick: int) -> np.ndarray:
    """Corners ``(n, 4, 2)`` in (beats, pitch) of the notes that start before ``end_tick``."""
    keep = notes["time"] < end_tick
    left = notes["time"][keep] / tpq
    right = np.minimum(notes["time"][keep] + notes["duration"][keep], end_tick) / tpq
    pitch = notes["pitch"][keep].astype(np.float64)
    low, high = pitch - NOTE_HEIGHT_SEMITONES / 2, pitch + NOTE_HEIGHT_SEMITONES / 2
    corners = ((left, low), (right, low), (right, high), (left, high))
    return np.stack([np.stack(c, axis=1) for c in corners], axis=1)


def _draw_pitched(ax, tracks: list[symusic.Track], tpq: int, end_tick: int) -> None:
    """Each pitched track as one collection of boxes in its instrument's colour."""
    from matplotlib.collections import PolyCollection

    seen: dict[int, int] = {}  # program → tracks drawn so far
    pitches: list[int] = []
    for track in tracks:
        boxes = _note_boxes(track.notes.numpy(), tpq, end_tick)
        if not len(boxes):
            continue
        k = seen.get(track.program, 0)
        seen[track.program] = k + 1
        colour = instrument_colour(int(track.program), k)
        ax.add_collection(PolyCollection(boxes, facecolors=[colour], edgecolors="none"))
        centres = boxes[:, 0, 1] + NOTE_HEIGHT_SEMITONES / 2
        pitches.extend((round(float(centres.min())), round(float(centres.max()))))
    if pitches:  # none when every note starts past max_seconds
        low, high = min(pitches) - PITCH_MARGIN_SEMITONES, max(pitches) + PITCH_MARGIN_SEMITONES
        ax.set_ylim(low - 0.5, high + 0.5)
        ticks = [p for p in range(max(low, 0), min(high, 127) + 1) if p % 12 == 0] or [low]
        ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    ax.set_ylabel("pitch")


def _draw_drums(ax, tracks: list[symusic.Track], tpq: int, end_tick: int) -> None:
    """Drum hits as short ticks at their onsets, one lane row per drum sound present."""
    times, keys = [], []
    for track in tracks:
        notes = track.notes.numpy()
        keep = notes["time"] < end_tick
        times.append(notes["time"][keep] / tpq)
        keys.append(notes["pitch"][keep].astype(int))
    onset, key = np.concatenate(times), np.concatenate(keys)
    rows = np.unique(key)  # (r,) the drum sounds present, low keys (kicks) at the bottom
    row_pixels = ax.bbox.height / max(len(rows), 1)
    size = min(DRUM_HIT_POINTS, DRUM_ROW_FILL * row_pixels * 72 / PNG_DPI)
    ax.scatter(onset, np.searchsorted(rows, key), s=size**2, marker="|", c=DRUM_COLOUR,
               linewidths=1.0)  # fmt: skip
    ax.set_ylim(-0.5, len(rows) - 0.5)
    every = max(1, math.ceil(len(rows) * 9 / max(row_pixels * len(rows), 1)))  # ≥ 9 px a label
    shown = range(0, len(rows), every)
    ax.set_yticks(list(shown), [drum_name(int(rows[i])) for i in shown], fontsize="x-small")
    ax.set_ylabel("drums")


def _legend(fig, entries: list[LegendEntry]) -> None:
    from matplotlib.patches import Patch

    shown = entries
    if len(entries) > MAX_LEGEND_ENTRIES:
        shown = entries[: MAX_LEGEND_ENTRIES - 1]
    handles = [Patch(facecolor=e.colour, label=e.label) for e in shown]
    if len(shown) < len(entries):
        rest = len(entries) - len(shown)
        handles.append(Patch(facecolor="none", edgecolor="none", label=f"+ {rest} more"))
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)


def render_png(
    midi_path: str | Path, png_path: str | Path, *, max_seconds: float = DEFAULT_MAX_SECONDS
) -> Path:
    """Draw a piano roll: instruments in their colours with a legend, drums in a lane below.

    The picture is always ``PNG_SIZE_INCHES`` at ``PNG_DPI`` (1400 × 600 pixels) and spans the
    notes, at most ``max_seconds`` of them (see :func:`_drawn_span`). Notes are drawn as one
    collection per track, so thousands of notes cost milliseconds, not a patch object each.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    midi_path, png_path = Path(midi_path), Path(png_path)
    max_seconds = check_max_seconds(max_seconds)
    score = load_midi(midi_path, max_beats=None)  # drawn up to max_seconds however long
    check_renderable(score, midi_path)
    tpq = score.ticks_per_quarter
    # the music ends where its last note does: a stray meta event far out (a sampled piece
    # can carry one) must not stretch the picture into millions of bar lines
    end_tick = _drawn_span(score, midi_path, max_seconds)
    entries = legend_entries(score, end_tick)
    pitched = [t for t in score.tracks if len(t.notes) and not t.is_drum]
    drums = [t for t in score.tracks if len(t.notes) and t.is_drum]
    has_pitched = any(e.program != DRUMS for e in entries) or not entries
    has_drums = any(e.program == DRUMS for e in entries)
    fig = Figure(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    lanes = [kind for kind, present in (("pitched", has_pitched), ("drums", has_drums)) if present]
    ratios = DRUM_LANE_SHARE if len(lanes) == 2 else (1,)
    axes = fig.subplots(len(lanes), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": ratios})[:, 0]  # fmt: skip
    bars = np.asarray(_bar_lines(score, end_tick)) / tpq
    for ax, kind in zip(axes, lanes):
        ax.vlines(bars, 0, 1, transform=ax.get_xaxis_transform(), colors="0.8", linewidth=0.6,
                  zorder=0)  # fmt: skip
        if kind == "pitched":
            _draw_pitched(ax, pitched, tpq, end_tick)
        else:
            _draw_drums(ax, drums, tpq, end_tick)
    span = max(end_tick / tpq, 1.0)
    # a hit on beat 0 is a tick centred on 0: start a hair earlier so the frame does not hide it
    axes[0].set_xlim(-DRUM_LEAD_SHARE * span if has_drums else 0.0, span)
    axes[-1].set_xlabel("beats (quarter notes)")
    axes[0].set_title(midi_path.name)
    if entries:
        _legend(fig, entries)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    part = png_path.with_name(f".{png_path.stem}.part.png")
    try:
        with naming(png_path):  # a full disk names no file otherwise
            fig.savefig(part, format="png")
            part.replace(png_path)
    finally:
        part.unlink(missing_ok=True)  # nothing half-written is left after a failed write
    return png_path
