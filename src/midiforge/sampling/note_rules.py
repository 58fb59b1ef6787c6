"""The musician's hard constraints for the note families: the multi-head LSTM and diffusion.

Both write note rows (:data:`midiforge.schema.NOTE_FIELDS`, time in beats) that
``score_from_notes`` turns into a 4/4 score at 120 bpm, so a bar is four beats here. Times are
kept on that score's tick grid (:data:`~midiforge.data.encode.DEFAULT_TPQ` per beat), so what a
rule decides is exactly what the file holds.

Multi-head LSTM (:class:`NoteRules`, called by ``sample_notes`` at every note):

* key/range — the pitch head's logits are masked to the allowed pitches before the draw (with
  ``chromatic``: also a semitone step off the scale while the share allows; that note is cut
  to at most a beat);
* polyphony — a note whose onset finds ``max_polyphony`` notes sounding waits until the first
  of them ends (its onset moves later; the model then reads the note where it was placed);
* length — a note that would end after the last bar line is shortened to end on it; a note
  that would start on it (or later) ends the piece there (its row is not written);
* chords — :meth:`NoteRules.steer` adds ``Musical.chord_bonus`` nats to the pitch head's logits
  of the chord tones of the bar the note starts in (the onset the time head predicts for it,
  without ``--noise``; drum notes untouched), the pitch logits then shifted back to their total
  (as token models do, :mod:`~midiforge.sampling.token_rules`).

Diffusion (:class:`DiffusionRules`):

* after every denoising step the log-frequency channel is projected onto the allowed pitches:
  decoded to a (fractional) MIDI pitch, moved to the nearest allowed one — nearest in
  log-frequency, which is nearest in semitones — and encoded back (with ``chromatic > 0`` only
  the range is projected, the key is settled at the end);
* the decoded piece is then filtered in onset order: a pitch still outside the allowed set
  (the decoder clips to the training range) moves to the nearest allowed one unless it is a
  passing tone the chromatic share allows; a note where ``max_polyphony`` notes sound, or at
  the same pitch and onset as a kept one, is dropped; notes are shortened to the last bar line
  and those starting on it dropped. Pieces get more windows until they reach the end;
* chords: after every denoising step (:meth:`DiffusionRules.project`, with the window's start
  and context from :meth:`DiffusionRules.window`) the onsets are decoded from the delta channel,
  and each note on a beat (onset within half a grid step of a whole beat) moves to the nearest
  pitch that is both allowed (key ∩ range) and a tone of its bar's chord; notes off the beat
  keep their pitch (passing tones stay possible). ``finish`` applies the same rule to the
  decoded onsets, so the written file keeps it exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from midiforge.data.encode import DEFAULT_TPQ, frequency_hz
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS
from midiforge.models.note_features import (
    A4_LOG2_HZ,
    A4_PITCH,
    NO_RHYTHM,
    SEMITONES_PER_OCTAVE,
    TIME_GRID_BEATS,
    Rhythm,
    log2_hz_to_midi,
    place_onsets,
)
from midiforge.pitches import N_PITCHES, program_row
from midiforge.sampling.musical import CHROMATIC_MAX_BEATS, Musical
from midiforge.schema import FIELD

BAR_BEATS = 4.0  # score_from_notes writes 4/4


def _ticks(beats: Any) -> np.ndarray:
    return np.rint(np.asarray(beats, np.float64) * DEFAULT_TPQ).astype(np.int64)


class _Voices:
    """Per row: pitch-rule tables, the chromatic tally and the end ticks of sounding notes."""

    def __init__(
        self, musical: Musical, rows: int, program: int, lines: np.ndarray | None = None
    ) -> None:
        self.scale = musical.scale()
        self.in_range = musical.range_table()[program_row(program)]
        self.allowed = musical.pitch_table()[program_row(program)]  # (128,) key ∩ range
        self.chromatic = musical.chromatic if musical.key else 0.0
        self.limit = musical.max_polyphony
        end = musical.end_beats(BAR_BEATS)
        if lines is not None and musical.bars is not None:  # the given bars' last line
            end = float(lines[min(musical.bars, len(lines) - 1)])
        self.end = None if end is None else int(_ticks(end))
        self.ends = np.full((rows, self.limit or 1), -1, np.int64)
        self.last_pitch = np.full(rows, -1, np.int64)
        self.notes = np.zeros(rows, np.int64)
        self.off = np.zeros(rows, np.int64)

    def passing(self, pitch: np.ndarray) -> np.ndarray:
        """Off-scale pitches ``(B, P)`` or ``(B,)`` the chromatic rule allows per row."""
        if self.chromatic <= 0:
            return np.zeros(np.shape(pitch), bool)
        pitch = np.asarray(pitch)
        budget = (self.off + 1) <= self.chromatic * (self.notes + 1)
        last = self.last_pitch.reshape(-1, *([1] * (pitch.ndim - 1)))
        ok = (np.abs(pitch - last) == 1) & (last >= 0) & self.in_range[pitch]
        return ok & ~self.scale[pitch] & budget.reshape(last.shape)

    def start(self, primer: np.ndarray | None) -> None:
        """The primer's notes sound on (its last pitch and latest ends are remembered)."""
        if primer is None or len(primer) == 0:
            return
        ends = np.sort(_ticks(primer[:, FIELD["onset"]] + primer[:, FIELD["duration"]]))
        self.ends[:] = np.pad(ends, (self.ends.shape[1], 0), constant_values=-1)[
            -self.ends.shape[1] :
        ]
        self.last_pitch[:] = int(primer[-1, FIELD["pitch"]])
        if self.end is not None and ends[-1] > self.end:
            raise MidiforgeError(
                f"bars/seconds: the primer ({ends[-1] / DEFAULT_TPQ / BAR_BEATS:.1f} bars) is "
                "longer than the piece asked for; ask for more, or use --primer-bars"
            )

    def place(self, row: np.ndarray, pitch, onset, duration) -> tuple[np.ndarray, np.ndarray]:
        """Onset and duration ticks of new notes in ``row`` after polyphony and length."""
        off = ~self.scale[pitch] & (self.chromatic > 0)
        duration = np.where(off, np.minimum(duration, _ticks(CHROMATIC_MAX_BEATS)), duration)
        if self.limit:
            onset = np.maximum(onset, self.ends[row].min(axis=1))  # wait for a free voice
        if self.end is not None:
            duration = np.minimum(duration, self.end - onset)
        return onset, duration

    def keep(self, row: np.ndarray, pitch, onset, duration) -> None:
        """Remember placed notes ``(len(row),)``."""
        slot = self.ends[row].argmin(axis=1)
        self.ends[row, slot] = onset + duration
        self.notes[row] += 1
        self.off[row] += ~self.scale[pitch]
        self.last_pitch[row] = pitch


def end_on_last_bar_line(notes: np.ndarray, first_new: int) -> tuple[np.ndarray, float | None]:
    """A free-length sample's note rows ended on the last bar line its new notes reach, and that
    line in beats (None, rows unchanged, when the new notes all start in one bar).

    Why: a sample that stops after N notes stops mid-chord, and the voices drawn before the cut
    ring on alone. The multi-head LSTM's chorales had fewer than two voices sounding in 2 % of
    their steps, nearly all in the last beats (polyphony rate 0.25 against a held-out ceiling of
    0.47, stop 30); a piece ends on a bar line. New notes starting on or after the line are
    dropped and those sounding past it end on it; rows before ``first_new`` (the primer's) are
    kept as they are. Times are read on the file's tick grid, so the file ends exactly there.
    """
    new = notes[first_new:]
    if len(new) == 0:
        return notes, None
    onset = _ticks(new[:, FIELD["onset"]])
    bar_ticks = int(_ticks(BAR_BEATS))
    line = int(onset.max()) // bar_ticks * bar_ticks
    if line <= int(onset.min()):
        return notes, None
    keep = onset < line
    end = np.minimum(onset + _ticks(new[:, FIELD["duration"]]), line)
    new = new[keep].copy()
    new[:, FIELD["duration"]] = (end[keep] - onset[keep]) / DEFAULT_TPQ
    return np.concatenate([notes[:first_new], new]).astype(notes.dtype), line / DEFAULT_TPQ


def _bar_of(onset_beats: Any, lines: np.ndarray | None = None) -> np.ndarray:
    """The bar (0-based) of onsets in beats: every :data:`BAR_BEATS`, or between ``lines``
    (beats of the bar lines from 0; a note past the last is in the last bar)."""
    onset = np.asarray(onset_beats, np.float64)
    if lines is None:
        bar = np.floor(onset / BAR_BEATS + 1e-9).astype(np.int64)
    else:
        bar = np.searchsorted(lines, onset + 1e-9, side="right") - 1
        bar = np.minimum(bar, len(lines) - 2)
    return np.maximum(bar, 0)


def _bar_index(onset_beats: Any, bars: int, lines: np.ndarray | None = None) -> np.ndarray:
    """Row of the chord table for onsets in beats (bar ``b`` uses chord ``b % bars``)."""
    return _bar_of(onset_beats, lines) % bars


class NoteRules:
    """``sample_notes``' hook: :meth:`steer` and :meth:`pitch_mask` before each draw,
    :meth:`place` after."""

    def __init__(
        self,
        musical: Musical,
        n: int,
        *,
        program: int = 0,
        primer=None,
        lines: np.ndarray | None = None,
    ) -> None:
        """``lines``: beats of the bar lines the length and the chords count in (harmonize: the
        melody's, whose beats the samples share); None: a bar every :data:`BAR_BEATS`, the 4/4
        ``score_from_notes`` writes."""
        self.lines = lines
        self.voices = _Voices(musical, n, program, lines)
        self.voices.start(primer)
        table = musical.chord_table()  # (K, 128) or None
        self.chords = None if table is None else torch.from_numpy(table * musical.chord_bonus)
        self.tones = table  # (K, 128) bool, each bar's chord tones: what a held note may keep
        self.alive = torch.ones(n, dtype=torch.bool)

    @property
    def steers(self) -> bool:
        return self.chords is not None

    def steer(self, logits: torch.Tensor, onset: torch.Tensor, programs: torch.Tensor):
        """Pitch logits ``(n, 128)`` with the chord bonus of each note's bar (onset, beats)."""
        if self.chords is None:
            return logits
        bar = _bar_index(onset.numpy(), len(self.chords), self.lines)
        pitched = (programs.numpy() != DRUMS)[:, None]
        bonus = (self.chords[bar] * torch.from_numpy(pitched)).to(logits)  # (n, 128)
        shifted = logits + bonus
        return shifted + (logits.logsumexp(-1) - shifted.logsumexp(-1))[:, None]

    def pitch_mask(self) -> torch.Tensor:
        """``(n, 128)`` bool: the pitches each sample's next note may take."""
        v = self.voices
        pitches = np.broadcast_to(np.arange(128), (len(v.notes), 128))
        return torch.from_numpy(v.allowed[None, :] | v.passing(pitches))

    def place(
        self,
        pitch: torch.Tensor,
        onset: torch.Tensor,
        duration: torch.Tensor,
        skip: torch.Tensor | None = None,
    ):
        """Onsets and durations ``(n,)`` (beats) moved by polyphony and cut to the length;
        the samples in ``skip`` (bool ``(n,)``: their note is not theirs to write, a lead's or a
        silent part's) are left as they were."""
        v, rows = self.voices, np.arange(len(self.alive))
        p = pitch.numpy().astype(np.int64)
        on, dur = v.place(rows, p, _ticks(onset.numpy()), _ticks(duration.numpy()))
        if self.tones is not None:
            dur = self._give_way(p, on, dur)
        fits = dur >= 1 if v.end is None else (on < v.end) & (dur >= 1)
        skipped = np.zeros(len(p), bool) if skip is None else skip.numpy()
        self.alive &= torch.from_numpy(fits | skipped)
        live = np.flatnonzero(self.alive.numpy() & ~skipped)
        v.keep(live, p[live], on[live], dur[live])
        return torch.from_numpy(on / DEFAULT_TPQ).float(), torch.from_numpy(
            dur / DEFAULT_TPQ
        ).float()

    def end_beats(self) -> float | None:
        return None if self.voices.end is None else self.voices.end / DEFAULT_TPQ

    def _give_way(self, pitch: np.ndarray, on: np.ndarray, dur: np.ndarray) -> np.ndarray:
        """Duration ticks with each note that would sound into the next bar cut at its line,
        unless its pitch is a tone of that bar's chord (or the bar has none).

        Why: a drawn duration does not know the next chord, and 40 % of the multi-head LSTM's
        ``--harmonize`` notes rang into it, against the chord asked for there (chord adherence
        0.762; cut at the line, 0.840; stop 30, before the sampler heard the melody: 4.8 % ring over
        now). A common tone may still be held over, as players do.
        """
        bar = _bar_of(on / DEFAULT_TPQ, self.lines)
        if self.lines is None:
            line = (bar + 1) * int(_ticks(BAR_BEATS))
        else:
            line = _ticks(self.lines[bar + 1])
        table = self.tones[(bar + 1) % len(self.tones)]  # (n, 128) the next bar's chord
        tone = table[np.arange(len(pitch)), np.clip(pitch, 0, 127)]
        cut = (on + dur > line) & (line > on) & table.any(axis=1) & ~tone
        return np.where(cut, line - on, dur)


def chord_pitches(chords: np.ndarray, pitch: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """Pitches (any shape, may be fractional) of notes whose onsets (beats, same shape) fall on
    a beat moved to the nearest pitch of their bar's row of ``chords`` ``(K, 128)`` bool; notes
    off the beat, and bars whose row is empty, keep theirs. Returns float64, same shape."""
    pitch = np.asarray(pitch, np.float64)
    on_beat = np.abs(onset - np.rint(onset)) < TIME_GRID_BEATS / 2
    rows = chords[_bar_index(onset, len(chords))]  # (..., 128)
    dist = np.abs(pitch[..., None] - np.arange(128))
    nearest = np.where(rows, dist, np.inf).argmin(axis=-1)
    return np.where(on_beat & rows.any(axis=-1), nearest, pitch)


class DiffusionRules:
    """``generate_notes``' hooks: :meth:`window` and :meth:`project` each step, :meth:`finish`
    each piece."""

    def __init__(
        self, musical: Musical, scaler: Any, *, program: int = 0, rhythm: Rhythm = NO_RHYTHM
    ) -> None:
        """``rhythm``: the style's time values the decoder puts notes on
        (``FeatureScaler.decode``), so the onsets the chord rule reads are the ones written."""
        self.musical, self.scaler, self.program = musical, scaler, program
        self.rhythm = rhythm
        probe = _Voices(musical, 1, program)
        target = probe.allowed if probe.chromatic <= 0 else probe.in_range
        self.targets = torch.tensor(np.flatnonzero(target), dtype=torch.float32)
        self.allowed = np.flatnonzero(probe.allowed)
        self.end = probe.end
        table = musical.chord_table()  # (K, 128): chord tones ∩ allowed; a row empty = free
        self.chords = None if table is None else table & probe.allowed[None, :]
        self.starts: np.ndarray | None = None  # the window's start onsets (None: a new piece)
        self.context = 0

    def window(self, starts: np.ndarray | None, context: int) -> None:
        """The next window continues pieces whose last onsets are ``starts`` (beats; None: the
        first window of new pieces), after ``context`` known notes."""
        self.starts, self.context = starts, context

    def _channel(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Channel ``i`` of scaled features ``(B, F, L)``, unscaled ``(B, L)``."""
        s, v = self.scaler, x[:, i]
        return ((v + 1) / 2 if s.method == "max" else v) * s.scale[i] + s.shift[i]

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, F, L)`` scaled features with channel 0 moved onto the allowed pitches (and,
        with chords, notes on a beat onto their bar's chord tones). With pitch-class channels
        the pitch moved is the one they decode to, and they are set to its class (±1).

        With no key, range or chords asked (a length or polyphony rule alone) nothing moves:
        snapping every step's noisy pitch channels onto whole notes would only take them off
        the noise level the model denoises at (the key-conditioned model's pieces fell from
        0.95 to 0.64 of their notes in key under ``--seconds`` before this)."""
        s = self.scaler
        if self.chords is None and len(self.targets) == N_PITCHES:
            return x
        if s.pitch_classes:
            decoded = s.pitches(x.transpose(1, 2).float().cpu().numpy())
            pitch = torch.from_numpy(decoded.astype(np.float32)).to(x.device)
        else:
            pitch = log2_hz_to_midi(self._channel(x, 0))
        t = self.targets.to(x.device)
        hi = torch.bucketize(pitch, t).clamp(1, len(t) - 1) if len(t) > 1 else None
        if hi is None:
            nearest = t.expand_as(pitch)
        else:
            lo_p, hi_p = t[hi - 1], t[hi]
            nearest = torch.where((pitch - lo_p).abs() <= (hi_p - pitch).abs(), lo_p, hi_p)
        if self.chords is not None:
            nearest = self._on_chords(x, nearest)
        raw = A4_LOG2_HZ + (nearest - A4_PITCH) / SEMITONES_PER_OCTAVE
        back = (raw - s.shift[0]) / s.scale[0]
        out = x.clone()
        out[:, 0] = back * 2 - 1 if s.method == "max" else back
        if s.pitch_classes:
            classes = nearest.round().long() % SEMITONES_PER_OCTAVE
            onehot = torch.nn.functional.one_hot(classes, SEMITONES_PER_OCTAVE)  # (B, L, 12)
            onehot = onehot.to(out.dtype) * 2 - 1
            out[:, s.pitch_class_slice] = onehot.transpose(1, 2)
        return out

    def _onsets(self, x: torch.Tensor) -> np.ndarray:
        """``(B, L)`` onsets in beats decoded from the delta channel, as ``decode`` places them
        (the known context notes get onsets too; they are put back after the step)."""
        s, i = self.scaler, self.scaler.continuous.index("delta")
        coded = np.clip(self._channel(x, i).cpu().numpy(), s.low[i], s.high[i])
        delta = s.decode_deltas(coded, self.rhythm.gaps)
        delta[:, : self.context + (self.starts is None)] = 0.0
        start = np.zeros(len(x)) if self.starts is None else np.asarray(self.starts)
        return place_onsets(delta, start, self.rhythm.grid)

    def _on_chords(self, x: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
        """Pitches ``(B, L)`` of notes on a beat moved to the nearest tone of their bar's chord."""
        onset = self._onsets(x)
        moved = chord_pitches(self.chords, pitch.cpu().numpy(), onset)
        return torch.from_numpy(moved).to(pitch)

    def short(self, pieces: list[np.ndarray]) -> bool:
        """Some piece has not reached the last bar line yet."""
        if self.end is None:
            return False
        return any(len(p) == 0 or _ticks(p[-1, FIELD["onset"]]) < self.end for p in pieces)

    def finish(self, piece: np.ndarray) -> np.ndarray:
        """The decoded piece filtered in onset order (see the module docstring)."""
        v, row = _Voices(self.musical, 1, self.program), np.zeros(1, np.int64)
        keep: list[np.ndarray] = []
        seen: set[tuple[int, int]] = set()  # (onset tick, pitch) of kept notes
        for note in piece:
            pitch = np.array([int(note[FIELD["pitch"]])])
            if not v.allowed[pitch[0]] and not v.passing(pitch)[0]:
                pitch[0] = self.allowed[np.abs(self.allowed - pitch[0]).argmin()]
            if self.chords is not None:
                pitch = chord_pitches(self.chords, pitch, note[FIELD["onset"]][None]).astype(int)
            onset = _ticks(note[FIELD["onset"]]).reshape(1)
            full = v.limit is not None and (v.ends[0] > onset[0]).sum() >= v.limit
            late = v.end is not None and onset[0] >= v.end
            if full or late or (int(onset[0]), int(pitch[0])) in seen:
                continue
            onset, duration = v.place(row, pitch, onset, _ticks(note[FIELD["duration"]]))
            v.keep(row, pitch, onset, duration)
            seen.add((int(onset[0]), int(pitch[0])))
            new = note.copy()
            new[FIELD["pitch"]], new[FIELD["duration"]] = pitch[0], duration[0] / DEFAULT_TPQ
            keep.append(new)
        out = np.array(keep, np.float32).reshape(-1, piece.shape[1])
        if len(out):
            out[:, FIELD["frequency"]] = frequency_hz(out[:, FIELD["pitch"]])
            onsets = out[:, FIELD["onset"]]
            out[:, FIELD["delta"]] = np.diff(onsets, prepend=onsets[0])
        return out
