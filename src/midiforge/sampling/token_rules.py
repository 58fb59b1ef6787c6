"""The musician's hard constraints for token models (transformer, lstm, gru) on REMI ids.

:func:`musical_constraints` builds one :class:`MusicalConstraint` (a
:class:`~midiforge.sampling.constraints.TokenConstraint`) that follows each sample with a
:class:`~midiforge.sampling.remi_state.RemiState` and, before every step, ANDs these masks in
this order, dropping a rule for a row where it would leave no id (as ``constraints.combine``):

0. order    — never PAD, BOS or MASK; with the grammar mask (the default), polyphony, a length
              or controls, the piece opens with ``Bar`` (then its ``TimeSig``, by the grammar)
              and time only moves forward (a ``Position`` after the last one of its bar, inside
              the bar): MidiTok counts a Position that does not move forward as an error, and
              a first-order type grammar cannot see it; and the first bar sounds (no second
              ``Bar`` before its first note: POP909's songs open a bar or more after their
              file's start, and a model that has learned beginnings would copy that silence);
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
              always ends on its bar line, its last bars empty if the budget ran short;
5. controls — for a run with learned control tokens, after each bar's ``Bar``/``TimeSig``
              only the next requested control's id (:mod:`midiforge.sampling.control_rule`).

After the masks, :class:`ChordSteer` (``chords``) shifts the logits of ``Pitch`` ids: a bonus of
``Musical.chord_bonus`` nats on the current bar's chord tones for pitched programs, the pitch
ids then moved together so their total probability stays what the model gave (the steer
chooses the pitch, not whether a note comes). It is a steer, not a mask: every pitch the masks
allow stays possible; ``Musical.chord_steer=False`` turns it off (a run with learned chord
tokens then follows its forced chord tokens alone).

The rules need REMI's grammar to hold (a Position is followed by a note, a Velocity by a
Duration), so ``generate`` switches the grammar mask on with them; in each row they also skip
the masks of kinds the grammar cannot allow after that row's last token
(``remi_state.PITCH_AFTER``, ...). Why it is cheap (issue 16: at most 1.1x the cost of a plain
step): a row's mask is a Python int (:mod:`midiforge.sampling.id_bits`) and each rule ANDs in
a few ints that are looked up, not computed — a constant per program (key, range) or per
denominator, or one of a threshold table found by bisection (the Positions after the last
one, those where a voice is free again, the Durations that end by the last bar line). The
rows become one torch tensor per step; ``allowed_bits`` hands them to the grammar as ints.
The chord steer is a few torch calls a step on the Pitch block (:class:`ChordSteer`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np
import torch

from midiforge.errors import MidiforgeError
from midiforge.sampling.control_rule import ControlRule
from midiforge.sampling.id_bits import (
    all_bits,
    combine_bits,
    keep_bits,
    prefix_bits,
    suffix_bits,
    to_bits,
    to_tensor,
)
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
    CONTROL,
    DURATION_AFTER,
    EOS,
    MID_NOTE,
    PITCH_AFTER,
    POSITION_AFTER,
    TIMESIG,
    TIMESIG_AFTER,
    RemiState,
    RemiVocab,
    check_tokenizer,
)

CLOSE_NOTE_TOKENS = 4  # at most Program, Pitch, Velocity, Duration finish a started note


def _pitch_bits(vocab: RemiVocab, pitch_table: np.ndarray) -> list[int]:
    """Per program row: the int keeping the pitch ids of a ``(129, 128)`` table (drum and
    pitched columns alike, by value), other ids untouched."""
    out = []
    for pitches in pitch_table:
        full = np.ones(vocab.size, bool)
        for cols in vocab.pitch_cols:
            full[cols] = pitches[vocab.value[cols]]
        out.append(to_bits(full))
    return out


class KeyRule:
    """Pitch ids on the scale; rationed semitone steps off it when ``chromatic > 0``.

    With ``range`` given as well, ``also`` folds the range's table into this one (and into the
    chromatic steps, per program): one rule where two would AND to the same mask.
    """

    def __init__(self, vocab: RemiVocab, musical: Musical, also: np.ndarray | None = None) -> None:
        table = np.ones((N_PROGRAMS, N_PITCHES), bool)
        table[1:] = musical.scale()[None, :]
        if also is not None:
            table &= also
        self.tables = _pitch_bits(vocab, table)
        self.within = None if also is None else _pitch_bits(vocab, also)  # for the steps
        self.chromatic = musical.chromatic
        self.vocab = vocab
        ticks = vocab.dur_ticks[:, vocab.duration_cols]  # (n_den, durations)
        short = ticks <= vocab.tpq * CHROMATIC_MAX_BEATS
        self.short = [keep_bits(vocab.size, vocab.duration_cols, row) for row in short]
        # by last pitch + 1: the pitch ids a semitone from it (0: no note yet, none)
        steps = [np.zeros(vocab.size, bool)]
        for last in range(N_PITCHES):
            steps.append(vocab.pitchlike & (np.abs(vocab.value - last) == 1))
        self.steps = [to_bits(row) for row in steps]

    def apply(self, s: RemiState, r: int, m: int) -> int:
        if self.chromatic > 0 and s.pending_chromatic[r]:
            m &= self.short[s.den[r]]
        if s.last_kind[r] not in PITCH_AFTER:
            return m
        rule = self.tables[s.program[r]]
        if (s.chromatic[r] + 1) <= self.chromatic * (s.notes[r] + 1):  # an off-scale step fits
            step = self.steps[s.last_pitch[r] + 1]
            rule |= step if self.within is None else step & self.within[s.program[r]]
        return m & rule


class RangeRule:
    """Pitch ids inside the range of the current program (drums free)."""

    def __init__(self, vocab: RemiVocab, musical: Musical) -> None:
        self.tables = _pitch_bits(vocab, musical.range_table())

    def apply(self, s: RemiState, r: int, m: int) -> int:
        return m & self.tables[s.program[r]] if s.last_kind[r] in PITCH_AFTER else m


class PolyphonyRule:
    """No new pitched note where ``limit`` notes already sound."""

    def __init__(self, vocab: RemiVocab, limit: int) -> None:
        self.vocab, self.limit = vocab, limit
        self.no_pitch = to_bits(~vocab.pitchlike)
        self.no_program = keep_bits(vocab.size, vocab.program_cols, False)
        # Positions by tick; a Position is open where fewer than ``limit`` notes sound at it
        self.ticks, self.open, _ = position_thresholds(vocab)

    def apply(self, s: RemiState, r: int, m: int) -> int:
        kind, ends = s.last_kind[r], s.ends[r]
        if len(ends) < self.limit:
            return m
        freed = sorted(ends)[-self.limit]  # the tick from which fewer than limit notes sound
        if kind in PITCH_AFTER and freed > s.tick[r]:
            m &= self.no_program
            if s.program[r] != 0:
                m &= self.no_pitch
        if kind in POSITION_AFTER:
            m &= self.open[bisect_left(self.ticks[s.den[r]], freed - s.bar_start[r])]
        return m


def position_thresholds(vocab: RemiVocab) -> tuple[list[list[int]], list[int], list[int]]:
    """Per denominator the ticks of the Position ids in order after the bar line; and per
    ``j`` the ints keeping the Positions from the ``j``-th on, and those before the ``j``-th."""
    order = np.argsort(vocab.position_of, kind="stable")
    ids = np.arange(vocab.size)[vocab.position_cols][order]
    ticks = [(vocab.position_of[order] * tpp).tolist() for tpp in vocab.tpp]
    return ticks, suffix_bits(vocab.size, ids), prefix_bits(vocab.size, ids)


class LengthRule:
    """Exactly the requested bars (or the bars that fit in the seconds), then ``EOS``."""

    def __init__(
        self, vocab: RemiVocab, musical: Musical, max_tokens: int, controls: ControlRule | None
    ) -> None:
        if vocab.eos is None:
            raise MidiforgeError(
                "bars/seconds: the run's tokenizer has no EOS token to end a piece with; "
                "use a run prepared with BOS/EOS tokens"
            )
        self.vocab, self.musical, self.max_tokens = vocab, musical, max_tokens
        # a bar closed is Bar (+ TimeSig) and the control tokens the control rule forces
        forced = [] if controls is None else controls.plan
        self.per_bar = 1 + int(vocab.has_timesig) + len(forced)
        self.forced_bits = 0 if controls is None else controls.bits
        self.dur_ticks = vocab.dur_ticks[:, vocab.duration_cols]  # (n_den, durations)
        ids = np.arange(vocab.size)
        timesigs = ids[vocab.timesig_cols]
        self.timesig_only = {
            int(t): keep_bits(vocab.size, timesigs, timesigs == t) for t in timesigs
        }
        self.eos_only = 1 << vocab.eos
        self.no_bar = all_bits(vocab.size) & ~(1 << vocab.bar)
        self.no_eos = all_bits(vocab.size) & ~(1 << vocab.eos)
        self.closing = {k: to_bits(vocab.kind == k) for k in (BAR, EOS, TIMESIG)}
        # per denominator: the Durations' ticks in order, and the int keeping the j shortest
        order = [np.argsort(row, kind="stable") for row in self.dur_ticks]
        ids = np.arange(vocab.size)[vocab.duration_cols]
        self.dur_sorted = [row[o].tolist() for row, o in zip(self.dur_ticks, order)]
        self.shortest = [prefix_bits(vocab.size, ids[o]) for o in order]

    def start(self, s: RemiState) -> None:
        self.steps = 0
        self.row_index: dict[tuple[int, ...], torch.Tensor] = {}  # steer's, by rows
        b = len(s.tick)
        self.end_tick = [0] * b  # recorded at EOS
        self.final, self.end = [0] * b, [0] * b
        for r in range(b):
            self._place(s, r)

    def _place(self, s: RemiState, r: int) -> None:
        """The last bar (1-based) of row ``r`` and the tick of its closing bar line."""
        begun = max(s.bars[r], 1)
        if self.musical.bars is not None:
            final = self.musical.bars
        else:
            ticks = self.musical.seconds * TEMPO_BPM / SECONDS_PER_MINUTE * self.vocab.tpq
            fit = math.floor((ticks - s.bar_start[r]) / s.bar_ticks[r] + 1e-9)
            final = begun + max(fit, 1) - 1
        self.final[r] = final
        self.end[r] = s.bar_start[r] + (final - begun + 1) * s.bar_ticks[r]

    def update(self, s: RemiState) -> None:
        self.steps += 1
        for r, kind in enumerate(s.last_kind):
            if kind == EOS and self.end_tick[r] == 0:
                self.end_tick[r] = self.end[r]
            elif kind in (TIMESIG, BAR):
                self._place(s, r)

    def needed(self, s: RemiState, r: int) -> int:
        """Tokens that closing row ``r``'s piece takes from here (an upper bound)."""
        bars = s.bars[r]
        missing = self.final[r] - max(bars, 1) + (bars == 0)
        return CLOSE_NOTE_TOKENS + missing * self.per_bar + 1

    def apply(self, s: RemiState, r: int, m: int) -> int:
        kind = s.last_kind[r]
        last = s.bars[r] >= 1 and s.bars[r] >= self.final[r]  # in the last bar
        m &= self.no_bar if last else self.no_eos
        if kind in DURATION_AFTER:
            den = s.den[r]  # the Durations that end by the last bar line
            m &= self.shortest[den][bisect_right(self.dur_sorted[den], self.end[r] - s.tick[r])]
        if kind in TIMESIG_AFTER and s.timesig[r] >= 0:  # the time signature stays once set
            m &= self.timesig_only[s.timesig[r]]
        if kind not in MID_NOTE and self.max_tokens - self.steps <= self.needed(s, r):
            m &= self._closing(kind, last)  # the budget left is what closing takes
        if s.done[r]:
            m &= self.eos_only
        return m

    def steer(self, s: RemiState, logits: torch.Tensor) -> torch.Tensor:
        """In its last bar a row's wish for a new bar is its wish to end: the probability of
        ``Bar``, which :meth:`apply` forbids there, moves to ``EOS``. Without this the model,
        which rarely ends a piece of its own accord, fills the last bar with notes until the
        token budget runs out. A row that has ended (only ``EOS`` allowed) is left as is."""
        rows = tuple(
            r
            for r, (b, f, d) in enumerate(zip(s.bars, self.final, s.done))
            if b >= max(f, 1) and not d
        )
        if not rows:
            return logits
        idx = self.row_index.get(rows)
        if idx is None:  # one per set of rows in their last bar: a few per call
            idx = self.row_index[rows] = torch.tensor(rows, device=logits.device)
        eos, bar = self.vocab.eos, self.vocab.bar
        out = logits.clone()
        ended = torch.logaddexp(logits[idx, eos].float(), logits[idx, bar].float())
        out[idx, eos] = ended.to(logits.dtype)
        return out

    def _closing(self, kind: int, last: bool) -> int:
        """The one kind of token that closes the piece soonest from a row's place (and after a
        bar's head or a control token, the controls the control rule forces there)."""
        if kind == BAR and self.vocab.has_timesig:
            return self.closing[TIMESIG]
        closing = self.closing[EOS if last else BAR]
        return closing | self.forced_bits if kind in (self.vocab.head, CONTROL) else closing


class ChordSteer:
    """A bonus on ``Pitch`` ids of the current bar's chord tones (see the module docstring).

    With ``p`` the model's probabilities over the Pitch ids and ``b`` a row's bonuses, the
    steered block is ``block + b - log(sum(p * exp(b)))``: the pitch ids' total mass stays
    what the model gave. Cheap because a step is a handful of torch calls: the rows' ``b`` and
    ``exp(b)`` are one cached pair of tensors per combination of the rows' chords (a few per
    piece), and rows that have ended (their mask allows only ``EOS``) are not steered.
    """

    MAX_CACHED = 4096  # bonus tensors kept (one per combination of the rows' chords)

    def __init__(self, vocab: RemiVocab, musical: Musical) -> None:
        table = musical.chord_table()  # (K, 128)
        self.cols = vocab.pitch_cols[0]  # Pitch ids; PitchDrum ids are never steered
        bonus = torch.from_numpy(table[:, vocab.value[self.cols]] * musical.chord_bonus)
        self.k = len(bonus)
        # row K: no bonus (drums, an ended row)
        self.bonus = torch.cat([bonus.float(), torch.zeros(1, bonus.shape[1])])  # (K + 1, P)
        self.gain = self.bonus.exp()  # (K + 1, P)
        self.added: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def to(self, device: torch.device) -> None:
        self.bonus, self.gain, self.added = self.bonus.to(device), self.gain.to(device), {}

    def chord_rows(self, s: RemiState) -> tuple[int, ...] | None:
        """Per row the row of ``bonus`` it gets; None when no row writes a pitch next."""
        if not any(k in PITCH_AFTER and not d for k, d in zip(s.last_kind, s.done)):
            return None
        k = self.k
        return tuple(
            k if prog == 0 or done else max(b - 1, 0) % k  # program row 0: drums
            for b, prog, done in zip(s.bars, s.program, s.done)
        )

    def apply(self, s: RemiState, logits: torch.Tensor) -> torch.Tensor:
        key = self.chord_rows(s)
        if key is None:
            return logits
        added = self.added.get(key)
        if added is None:
            if len(self.added) >= self.MAX_CACHED:
                self.added.clear()
            rows = list(key)
            added = self.added[key] = (self.bonus[rows], self.gain[rows])  # (B, P) each
        bonus, gain = added
        out = logits.clone()
        block = out[:, self.cols]  # (B, P), a view: written in place below
        fp32 = logits.dtype == torch.float32
        p = block.softmax(-1) if fp32 else block.softmax(-1, dtype=torch.float32)
        mass = torch.linalg.vecdot(p, gain).log()  # (B,): log E_p[exp(b)]
        shift = bonus - mass[:, None]
        block += shift if fp32 else shift.to(logits.dtype)
        return out


class MusicalConstraint:
    """Key, range, polyphony, length, the learned controls and the chord steer as one token
    rule (module docstring)."""

    def __init__(
        self, tokenizer, musical: Musical, *, max_tokens: int, forward_time: bool = False
    ) -> None:
        self.vocab = RemiVocab(tokenizer)
        v = self.vocab
        self.n_ids = v.size
        musical.pitch_table()  # a key with no pitch in the range fails here, before sampling
        self.state = RemiState(v, scale=musical.scale(), slots=musical.max_polyphony or 1)
        self.controls = ControlRule.build(v, tokenizer, musical)
        # with the grammar mask, a length, polyphony or forced controls: the piece opens with a
        # bar line and time moves forward
        self.ordered = forward_time or bool(
            musical.max_polyphony or musical.has_length or self.controls
        )
        pitch: list = []
        if musical.key:
            pitch.append(KeyRule(v, musical))
        if musical.range:
            pitch.append(RangeRule(v, musical))
        later: list = []
        if musical.max_polyphony:
            later.append(PolyphonyRule(v, musical.max_polyphony))
        self.length = (
            LengthRule(v, musical, max_tokens, self.controls) if musical.has_length else None
        )
        if self.length is not None:
            later.append(self.length)
        if self.controls is not None:
            later.append(self.controls)
        self.rules = pitch + later  # the documented order, each rule on its own
        if musical.key and musical.range:
            pitch = [KeyRule(v, musical, also=musical.range_table())]  # ANDed: the same mask
        self.fast = pitch + later
        self.chords = ChordSteer(v, musical) if musical.steers_chords else None
        self.device = torch.device("cpu")
        self.all = all_bits(v.size)
        self.base = to_bits(~v.special)
        self.bar_only = 1 << v.bar
        self.no_bar = self.base & ~self.bar_only  # the first bar, before its first note
        self.ticks, self.after, self.before = position_thresholds(v)
        self.values = sorted(v.position_of.tolist())  # Position values, in the same order

    def start(self, seq: torch.Tensor) -> None:
        self.device = seq.device
        if self.chords is not None:
            self.chords.to(seq.device)
        self.state.start(seq)
        if self.length is not None:
            self.length.start(self.state)

    def order(self, r: int) -> int:
        """Rule 0 for row ``r``: no special ids; with ``ordered``, Bar first, time forward."""
        s = self.state
        if not self.ordered:
            return self.base
        if s.bars[r] == 0:
            return self.bar_only  # the piece opens with a bar line
        m = self.no_bar if s.bars[r] == 1 and not s.heard[r] else self.base
        if s.last_kind[r] not in POSITION_AFTER:
            return m
        # the Positions after the last one and inside the bar
        after = self.after[bisect_right(self.values, s.last_pos[r])]
        return m & after & self.before[bisect_left(self.ticks[s.den[r]], s.bar_ticks[r])]

    def rows(self) -> list[int]:
        """Each row's mask: every rule ANDed; where that leaves nothing, :func:`combine_bits`
        of the rules one by one, in order (rare)."""
        s, out = self.state, []
        for r in range(len(s.tick)):
            m = self.order(r)
            for rule in self.fast:
                m = rule.apply(s, r, m)
            if not m:  # some rule would leave nothing: the rules one by one, in order
                m = combine_bits([self.order(r), *(rl.apply(s, r, self.all) for rl in self.rules)])
            out.append(m)
        return out

    def allowed(self) -> torch.Tensor | None:
        return to_tensor(self.rows(), self.vocab.size).to(self.device)

    def allowed_bits(self) -> list[int]:
        """:meth:`allowed` as one int per row (:mod:`midiforge.sampling.id_bits`)."""
        return self.rows()

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        if self.length is not None:
            logits = self.length.steer(self.state, logits)
        return logits if self.chords is None else self.chords.apply(self.state, logits)

    def update(self, token: torch.Tensor) -> None:
        self.state.update(token)
        if self.length is not None:
            self.length.update(self.state)

    def end_ticks(self) -> list[int] | None:
        """Per sample, the tick of its last bar line (None without a length)."""
        if self.length is None:
            return None
        return [e if e > 0 else f for e, f in zip(self.length.end_tick, self.length.end)]


def reads_time(tokenizer) -> bool:
    """Whether the rules can follow this tokenizer's time (plain REMI, ``check_tokenizer``)."""
    try:
        check_tokenizer(tokenizer)
    except MidiforgeError:
        return False
    return True


def musical_constraints(
    tokenizer,
    musical: Musical,
    *,
    max_tokens: int,
    primer_ids: Sequence[int] = (),
    forward_time: bool = False,
) -> list[MusicalConstraint]:
    """The token rules of ``musical``, checked before sampling; empty when none is asked and
    ``forward_time`` (the grammar mask's time order, rule 0) is off or the tokenizer is not one
    the rules read (TSD, BPE: there only the type grammar masks)."""
    asked = musical.active or musical.asks_controls
    if not asked and not (forward_time and reads_time(tokenizer)):
        return []
    rule = MusicalConstraint(tokenizer, musical, max_tokens=max_tokens, forward_time=forward_time)
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
