"""The musician's hard constraints for token models (transformer, lstm, gru) on REMI ids.

:func:`musical_constraints` builds one :class:`MusicalConstraint` (a
:class:`~midiforge.sampling.constraints.TokenConstraint`) that follows each sample with a
:class:`~midiforge.sampling.remi_state.RemiState` and, before every step, ANDs these masks in
this order, dropping a rule for a row where it would leave no id (as ``constraints.combine``):

0. order    — never PAD, BOS or MASK; with polyphony or a length, the piece opens with
              ``Bar`` (then its ``TimeSig``, by the grammar) and time only moves forward (a
              ``Position`` after the last one of its bar, inside the bar);
1. key      — ``Pitch``/``PitchDrum`` ids on the scale for pitched programs; with
              ``chromatic`` an off-scale pitch a semitone from the last note while the
              piece's off-scale share stays within it, and then a ``Duration`` of at most a beat;
2. range    — pitch ids inside the program's range;
3. polyphony — where ``max_polyphony`` notes sound at the current tick, no pitch (nor pitched
              ``Program``) id; a ``Position`` only where fewer than that sound;
4. length   — before the last bar no ``EOS``; in it no ``Bar``, and ``EOS`` allowed; no
              ``Duration`` that would end after the last bar line; no change of time signature
              once one is set (so the end stays where it was computed); and when the token
              budget left is just what closing the piece takes, only the tokens that close it
              (finish the note, ``Bar`` + ``TimeSig`` per missing bar, ``EOS``): the piece
              always ends on its bar line, its last bars empty if the budget ran short.

After the masks, :class:`ChordSteer` (``chords``) shifts the logits of ``Pitch`` ids: a bonus of
``Musical.chord_bonus`` nats on the current bar's chord tones for pitched programs, the pitch
ids then moved together so their total probability stays what the model gave (the steer
chooses the pitch, not whether a note comes). It is a steer, not a mask: every pitch the masks
allow stays possible.

The rules need REMI's grammar to hold (a Position is followed by a note, a Velocity by a
Duration), so ``generate`` switches the grammar mask on with them; each step they also skip
the masks of kinds the grammar cannot allow next in any row (``remi_state.PITCH_AFTER``, ...).
All masks are numpy ``(B, V)`` and become one torch tensor per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from midiforge.errors import MidiforgeError
from midiforge.sampling.musical import (
    CHROMATIC_MAX_BEATS,
    N_PITCHES,
    N_PROGRAMS,
    SECONDS_PER_MINUTE,
    Musical,
    check_primer_bars,
)
from midiforge.sampling.options import TEMPO_BPM
from midiforge.sampling.remi_state import (
    BAR,
    DURATION_AFTER,
    EOS,
    MID_NOTE,
    PITCH_AFTER,
    POSITION_AFTER,
    TIMESIG,
    TIMESIG_AFTER,
    RemiState,
    RemiVocab,
)

CLOSE_NOTE_TOKENS = 4  # at most Program, Pitch, Velocity, Duration finish a started note


def combine_np(masks: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """``constraints.combine`` in numpy: AND in order, a mask that empties a row skipped there."""
    out = None
    for mask in masks:
        if mask is None:
            continue
        if out is None:
            out = mask
            continue
        both = out & mask
        out = np.where(both.any(axis=1, keepdims=True), both, out)
    return out


def _pitch_tables(vocab: RemiVocab, pitch_table: np.ndarray) -> list[np.ndarray]:
    """Per pitch column group, ``(129, ids)`` bool from a ``(129, 128)`` table, by value."""
    return [pitch_table[:, vocab.value[cols]] for cols in vocab.pitch_cols]


class KeyRule:
    """Pitch ids on the scale; rationed semitone steps off it when ``chromatic > 0``.

    With ``range`` given as well and no chromatic allowance, ``also`` folds the range's table
    into this one: one lookup where two would AND to the same mask.
    """

    def __init__(self, vocab: RemiVocab, musical: Musical, also: np.ndarray | None = None) -> None:
        table = np.ones((N_PROGRAMS, N_PITCHES), bool)
        table[1:] = musical.scale()[None, :]
        if also is not None:
            table &= also
        self.tables = _pitch_tables(vocab, table)
        self.chromatic = musical.chromatic
        self.vocab = vocab
        ticks = vocab.dur_ticks[:, vocab.duration_cols]  # (n_den, durations)
        self.short = ticks <= vocab.tpq * CHROMATIC_MAX_BEATS
        # row last_pitch + 1: the ids a semitone from the last note (row 0: no note yet)
        last = np.arange(-1, N_PITCHES)[:, None]
        self.steps = [
            (np.abs(vocab.value[cols][None, :] - last) == 1) & (last >= 0)
            for cols in vocab.pitch_cols
        ]

    def apply(self, s: RemiState, allowed: np.ndarray) -> None:
        v = self.vocab
        if self.chromatic > 0 and s.pending_chromatic.any():
            rows = np.flatnonzero(s.pending_chromatic)
            allowed[rows, v.duration_cols] &= self.short[s.den[rows]]
        if not s.may(PITCH_AFTER):
            return
        budget = None
        if self.chromatic > 0:
            budget = ((s.chromatic + 1) <= self.chromatic * (s.notes + 1))[:, None]
        for cols, table, step in zip(v.pitch_cols, self.tables, self.steps):
            rule = table[s.program]
            if budget is not None:
                rule |= budget & step[s.last_pitch + 1]
            allowed[:, cols] &= rule


class RangeRule:
    """Pitch ids inside the range of the current program (drums free)."""

    def __init__(self, vocab: RemiVocab, musical: Musical) -> None:
        self.vocab = vocab
        self.tables = _pitch_tables(vocab, musical.range_table())

    def apply(self, s: RemiState, allowed: np.ndarray) -> None:
        if not s.may(PITCH_AFTER):
            return
        for cols, table in zip(self.vocab.pitch_cols, self.tables):
            allowed[:, cols] &= table[s.program]


class PolyphonyRule:
    """No new pitched note where ``limit`` notes already sound."""

    def __init__(self, vocab: RemiVocab, limit: int) -> None:
        self.vocab, self.limit = vocab, limit

    def apply(self, s: RemiState, allowed: np.ndarray) -> None:
        v = self.vocab
        if s.may(PITCH_AFTER):
            full = (s.ends > s.tick[:, None]).sum(axis=1) >= self.limit
            if full.any():
                pitched = full & (s.program != 0)
                for cols in v.pitch_cols:
                    allowed[pitched, cols] = False
                allowed[full, v.program_cols] = False
        if s.may(POSITION_AFTER):
            allowed[:, v.position_cols] &= s.sounding(s.position_ticks()) < self.limit


class LengthRule:
    """Exactly the requested bars (or the bars that fit in the seconds), then ``EOS``."""

    def __init__(self, vocab: RemiVocab, musical: Musical, max_tokens: int) -> None:
        if vocab.eos is None:
            raise MidiforgeError(
                "bars/seconds: the run's tokenizer has no EOS token to end a piece with; "
                "use a run prepared with BOS/EOS tokens"
            )
        self.vocab, self.musical, self.max_tokens = vocab, musical, max_tokens
        self.per_bar = 1 + int(vocab.has_timesig)
        self.dur_ticks = vocab.dur_ticks[:, vocab.duration_cols]  # (n_den, durations)
        self.timesig_ids = np.arange(vocab.size)[vocab.timesig_cols]
        self.eos_only = np.arange(vocab.size) == vocab.eos
        self.is_timesig = vocab.kind == TIMESIG

    def start(self, s: RemiState) -> None:
        self.steps = 0
        self.end_tick = np.zeros(len(s.tick), np.int64)  # recorded at EOS
        self._place(s)

    def _place(self, s: RemiState) -> None:
        """The last bar (1-based) and the tick of its closing bar line, per row."""
        begun = np.maximum(s.bars, 1)
        if self.musical.bars is not None:
            self.final = np.full(len(begun), self.musical.bars, np.int64)
        else:
            ticks = self.musical.seconds * TEMPO_BPM / SECONDS_PER_MINUTE * self.vocab.tpq
            fit = np.floor((ticks - s.bar_start) / s.bar_ticks + 1e-9).astype(np.int64)
            self.final = begun + np.maximum(fit, 1) - 1
        self.end = s.bar_start + (self.final - begun + 1) * s.bar_ticks
        self.most = CLOSE_NOTE_TOKENS + int(self.final.max()) * self.per_bar + 1  # >= needed

    def update(self, s: RemiState) -> None:
        self.steps += 1
        ended = s.token == self.vocab.eos
        self.end_tick = np.where(ended & (self.end_tick == 0), self.end, self.end_tick)
        if TIMESIG in s.after or BAR in s.after:
            self._place(s)

    def needed(self, s: RemiState) -> np.ndarray:
        """Tokens that closing the piece takes from here, per row (an upper bound)."""
        missing = self.final - np.maximum(s.bars, 1) + (s.bars == 0)
        return CLOSE_NOTE_TOKENS + missing * self.per_bar + 1

    def apply(self, s: RemiState, allowed: np.ndarray) -> None:
        v = self.vocab
        last = (s.bars >= 1) & (s.bars >= self.final)  # in the last bar
        allowed[:, v.bar] &= ~last
        allowed[:, v.eos] &= last
        if s.may(DURATION_AFTER):
            ends = s.tick[:, None] + self.dur_ticks[s.den]
            allowed[:, v.duration_cols] &= ends <= self.end[:, None]
        if s.may(TIMESIG_AFTER):
            fixed = s.timesig >= 0  # the time signature stays once set
            allowed[fixed, v.timesig_cols] &= self.timesig_ids[None, :] == s.timesig[fixed, None]
        left = self.max_tokens - self.steps
        if left <= self.most:  # the budget may be running short for some row
            closing = left <= self.needed(s)
            mid_note = MID_NOTE[s.last_kind]
            for row in np.flatnonzero(closing & ~mid_note):
                allowed[row] &= self._closing(s, row, bool(last[row]))
        if EOS in s.ended:
            allowed[s.done] &= self.eos_only

    def _closing(self, s: RemiState, row: int, last: bool) -> np.ndarray:
        """The one kind of token that closes the piece soonest from ``row``'s place."""
        if s.last_kind[row] == BAR and self.vocab.has_timesig:
            return self.is_timesig
        kind = EOS if last else BAR
        return self.vocab.kind == kind


class ChordSteer:
    """A bonus on ``Pitch`` ids of the current bar's chord tones (see the module docstring)."""

    def __init__(self, vocab: RemiVocab, musical: Musical) -> None:
        table = musical.chord_table()  # (K, 128)
        self.cols = vocab.pitch_cols[0]  # Pitch ids; PitchDrum ids are never steered
        self.bonus = torch.from_numpy(table[:, vocab.value[self.cols]] * musical.chord_bonus)
        self.bonus = self.bonus.float()  # (K, P) nats

    def to(self, device: torch.device) -> None:
        self.bonus = self.bonus.to(device)

    def apply(self, s: RemiState, logits: torch.Tensor) -> torch.Tensor:
        if not s.may(PITCH_AFTER):
            return logits
        bar = torch.from_numpy(np.maximum(s.bars - 1, 0) % len(self.bonus))
        pitched = torch.from_numpy(s.program != 0).to(logits.device)
        bonus = self.bonus[bar.to(logits.device)] * pitched[:, None]  # (B, P)
        block = logits[:, self.cols].float()
        shifted = block + bonus
        shifted += (block.logsumexp(-1) - shifted.logsumexp(-1))[:, None]  # same total mass
        out = logits.clone()
        out[:, self.cols] = shifted.to(logits.dtype)
        return out


class MusicalConstraint:
    """Key, range, polyphony, length and the chord steer as one token rule (module docstring)."""

    def __init__(self, tokenizer, musical: Musical, *, max_tokens: int) -> None:
        self.vocab = RemiVocab(tokenizer)
        v = self.vocab
        musical.pitch_table()  # a key with no pitch in the range fails here, before sampling
        self.state = RemiState(v, scale=musical.scale(), slots=musical.max_polyphony or 1)
        self.ordered = bool(musical.max_polyphony or musical.has_length)
        pitch: list = []
        if musical.key:
            pitch.append(KeyRule(v, musical))
        if musical.range:
            pitch.append(RangeRule(v, musical))
        later: list = []
        if musical.max_polyphony:
            later.append(PolyphonyRule(v, musical.max_polyphony))
        self.length = LengthRule(v, musical, max_tokens) if musical.has_length else None
        if self.length is not None:
            later.append(self.length)
        self.rules = pitch + later  # the documented order, each rule on its own
        if musical.key and musical.range and musical.chromatic <= 0:
            pitch = [KeyRule(v, musical, also=musical.range_table())]  # ANDed: the same mask
        self.fast = pitch + later
        self.chords = ChordSteer(v, musical) if musical.chords else None
        self.device = torch.device("cpu")
        self.base = ~v.special
        self.is_bar = np.arange(v.size) == v.bar

    def start(self, seq: torch.Tensor) -> None:
        self.device = seq.device
        if self.chords is not None:
            self.chords.to(seq.device)
        self.state.start(seq)
        if self.length is not None:
            self.length.start(self.state)

    def order_mask(self) -> np.ndarray:
        s = self.state
        allowed = np.repeat(self.base[None, :], len(s.tick), axis=0)
        if self.ordered:
            if s.may(POSITION_AFTER):
                allowed[:, self.vocab.position_cols] = s.forward_positions()
            if s.bars.min() == 0:
                allowed[s.bars == 0] = self.is_bar  # the piece opens with a bar line
        return allowed

    def allowed(self) -> torch.Tensor | None:
        """Every rule ANDed in place; where that empties a row, :func:`combine_np` instead."""
        allowed = self.order_mask()
        for rule in self.fast:
            rule.apply(self.state, allowed)
        if not allowed.any(axis=1).all():  # rare: some rule would leave a row nothing
            masks = [self.order_mask()]
            for rule in self.rules:
                masks.append(np.ones_like(allowed))
                rule.apply(self.state, masks[-1])
            allowed = combine_np(masks)
        return torch.from_numpy(allowed).to(self.device)

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.chords is None else self.chords.apply(self.state, logits)

    def update(self, token: torch.Tensor) -> None:
        self.state.update(token)
        if self.length is not None:
            self.length.update(self.state)

    def end_ticks(self) -> list[int] | None:
        """Per sample, the tick of its last bar line (None without a length)."""
        if self.length is None:
            return None
        end = np.where(self.length.end_tick > 0, self.length.end_tick, self.length.end)
        return [int(e) for e in end]


def musical_constraints(
    tokenizer, musical: Musical, *, max_tokens: int, primer_ids: Sequence[int] = ()
) -> list[MusicalConstraint]:
    """The token rules of ``musical`` (empty when none is asked), checked before sampling."""
    if not musical.active:
        return []
    rule = MusicalConstraint(tokenizer, musical, max_tokens=max_tokens)
    if rule.length is not None:
        check_primer_bars(musical, sum(1 for i in primer_ids if i == rule.vocab.bar))
        beats = rule.vocab.default_bar / rule.vocab.tpq
        bars = musical.bars or int(musical.end_beats(beats) // beats)
        need = CLOSE_NOTE_TOKENS + bars * rule.length.per_bar + 1
        if max_tokens < need:
            raise MidiforgeError(
                f"max_tokens: {max_tokens} tokens cannot hold {bars} bars, even empty ones; "
                f"give at least {need}, or fewer bars"
            )
    return [rule]
