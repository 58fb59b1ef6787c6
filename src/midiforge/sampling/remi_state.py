"""Where each sample of a batch stands in its REMI token stream, followed id by id.

The musician's token rules (:mod:`midiforge.sampling.token_rules`) need the time of the next
note, the pitch of the note being written, the program, and when the notes already written
end. :class:`RemiVocab` decodes the tokenizer's vocabulary once into lookup arrays (kind and
value of every id, ticks of every Duration per time-signature denominator); :class:`RemiState`
then updates a few Python ints per row and drawn id.

Time follows MidiTok's own REMI decoder exactly, in its ticks (``tokenizer.time_division`` per
quarter note): ``Bar`` opens a bar (the first one at tick 0, each further one a bar after the
last), ``TimeSig_n/d`` sets the bar's length, ``Position_k`` is ``k`` positions after the bar
line, and a note exists where ``Pitch`` (or ``PitchDrum``), ``Velocity`` and ``Duration``
follow each other, starting at the current tick. A test decodes real files both ways. The
learned controls' tokens (``Chord_*``, ``Density_*``, ``Polyphony_*`` after a bar's ``TimeSig``;
kind ``CONTROL``, :attr:`RemiVocab.family` their index in ``schema.CONTROL_TYPES``) move
nothing.

The vocabulary's arrays are numpy (the rules slice masks out of them); the state is plain
Python per row: B is a handful of samples, and one numpy call costs as much as dozens of
integer operations at these sizes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from midiforge.errors import MidiforgeError
from midiforge.pitches import program_row
from midiforge.schema import CONTROL_TYPES

(OTHER, BAR, TIMESIG, POSITION, PROGRAM, PITCH, PITCHDRUM, VELOCITY, DURATION, EOS, SPECIAL,
 CONTROL) = range(12)  # fmt: skip
KIND_OF = {
    **dict.fromkeys(CONTROL_TYPES, CONTROL),  # the learned controls after a bar's Bar/TimeSig
    "Bar": BAR,
    "TimeSig": TIMESIG,
    "Position": POSITION,
    "Program": PROGRAM,
    "Pitch": PITCH,
    "PitchDrum": PITCHDRUM,
    "Velocity": VELOCITY,
    "Duration": DURATION,
    "EOS": EOS,
    "PAD": SPECIAL,
    "BOS": SPECIAL,
    "MASK": SPECIAL,
}


def _after(*kinds: int) -> frozenset[int]:
    """The kinds of last token after which REMI's grammar may allow a kind next (BOS, PAD,
    MASK, unknown kinds and EOS, which the graph gives no successor, allow anything)."""
    return frozenset({*kinds, SPECIAL, OTHER, EOS})


# where the grammar allows each kind next: the rules skip work a row cannot need this step (a
# control token is followed by what may follow its bar's TimeSig, sampling.grammar)
PITCH_AFTER = _after(POSITION, DURATION, TIMESIG, PROGRAM, CONTROL)
POSITION_AFTER = _after(DURATION, TIMESIG, CONTROL)
DURATION_AFTER = _after(VELOCITY, PITCH, PITCHDRUM)
TIMESIG_AFTER = _after(BAR)
MID_NOTE = frozenset({POSITION, PROGRAM, PITCH, PITCHDRUM, VELOCITY})  # a note is unfinished
QUARTERS_PER_WHOLE = 4
DEFAULT_TIME_SIGNATURE = (4, 4)  # MidiTok's, before any TimeSig token
# token types that would move time or write notes in ways the state does not follow
UNSUPPORTED = ("Rest", "TimeShift", "PitchIntervalTime", "PitchIntervalChord", "NoteOn")


def columns(mask: np.ndarray) -> slice | np.ndarray:
    """The ids where ``mask`` holds: a slice when they are one run (cheap views), else ids."""
    ids = np.flatnonzero(mask)
    if len(ids) == 0:
        return slice(0, 0)
    if (np.diff(ids) == 1).all():
        return slice(int(ids[0]), int(ids[-1]) + 1)
    return ids


# what the errors below name
RULES = "key/range/max_polyphony/bars/seconds/chords/density/polyphony"


def check_tokenizer(tokenizer) -> None:
    """The rules read plain REMI ids: refuse BPE and other tokenizations by name."""
    name = type(tokenizer).__name__
    if name != "REMI":
        raise MidiforgeError(
            f"{RULES}: the run's tokenizer is {name}; these rules "
            "read REMI tokens (prepare --tokenizer remi), or use a note or diffusion run"
        )
    if getattr(tokenizer, "is_trained", False):
        raise MidiforgeError(
            f"{RULES}: the run's tokenizer uses BPE, whose merged "
            "ids hide pitches and durations; use a run prepared without --bpe-vocab"
        )
    bad = sorted({t.split("_")[0] for t in tokenizer.vocab} & set(UNSUPPORTED))
    if bad:
        raise MidiforgeError(
            f"{RULES}: the run's REMI tokenizer has {', '.join(bad)} tokens, which these "
            "rules do not follow; use a run prepared with the default REMI options"
        )


class RemiVocab:
    """Lookup arrays of one REMI vocabulary (V ids): what each id is and what it sets."""

    def __init__(self, tokenizer) -> None:
        check_tokenizer(tokenizer)
        vocab: dict[str, int] = tokenizer.vocab
        size = len(vocab)
        self.size = size
        self.tpq = int(tokenizer.time_division)  # ticks per quarter note of decoded scores
        tpb: dict[int, int] = dict(tokenizer._tpb_per_ts)  # MidiTok: denominator → ticks/beat
        self.dens = sorted(tpb)
        per_beat = int(tokenizer.config.max_num_pos_per_beat)
        self.tpp_of = np.array([tpb[d] // per_beat for d in self.dens])  # ticks per position
        self.kind = np.full(size, OTHER, np.int64)
        self.value = np.full(size, -1, np.int64)  # position, pitch, program
        self.bar_ticks = np.zeros(size, np.int64)  # TimeSig ids: ticks per bar
        self.den_of = np.zeros(size, np.int64)  # TimeSig ids: index into dens
        self.family = np.full(size, -1, np.int64)  # control ids: index into CONTROL_TYPES
        self.dur_ticks = np.zeros((len(self.dens), size), np.int64)  # Duration ids, per den
        for token, i in vocab.items():
            kind, _, value = token.partition("_")
            self.kind[i] = KIND_OF.get(kind, OTHER)
            if kind in CONTROL_TYPES:
                self.family[i] = CONTROL_TYPES.index(kind)
            elif kind in ("Position", "Pitch", "PitchDrum", "Program"):
                self.value[i] = int(value)
            elif kind == "TimeSig":
                num, den = (int(v) for v in value.split("/"))
                self.bar_ticks[i] = self.tpq * QUARTERS_PER_WHOLE * num // den
                self.den_of[i] = self.dens.index(den)
            elif kind == "Duration":
                beat, pos, res = (int(v) for v in value.split("."))
                for d, den in enumerate(self.dens):
                    self.dur_ticks[d, i] = (beat * res + pos) * tpb[den] // res
        num, den = DEFAULT_TIME_SIGNATURE
        self.default_den = self.dens.index(den)
        self.default_bar = self.tpq * QUARTERS_PER_WHOLE * num // den
        self.pitchlike = (self.kind == PITCH) | (self.kind == PITCHDRUM)
        # the columns of each kind (a slice: MidiTok numbers each kind's ids in one run)
        self.pitch_cols = [columns(self.kind == PITCH), columns(self.kind == PITCHDRUM)]
        self.position_cols = columns(self.kind == POSITION)
        self.duration_cols = columns(self.kind == DURATION)
        self.timesig_cols = columns(self.kind == TIMESIG)
        self.program_cols = columns((self.kind == PROGRAM) & (self.value >= 0))  # pitched
        self.position_of = self.value[self.position_cols]
        self.special = self.kind == SPECIAL
        self.eos = vocab.get("EOS_None")
        self.bar = vocab.get("Bar_None")
        self.has_timesig = bool((self.kind == TIMESIG).any())
        self.head = TIMESIG if self.has_timesig else BAR  # a bar's controls come after it
        self.velocities = bool(tokenizer.config.use_velocities)
        # the same lookups as Python lists: the state reads them one id at a time
        self.kinds, self.values = self.kind.tolist(), self.value.tolist()
        self.bar_ticks_of, self.dens_of = self.bar_ticks.tolist(), self.den_of.tolist()
        self.tpp = self.tpp_of.tolist()
        self.families = self.family.tolist()
        self.dur_ticks_of = self.dur_ticks.tolist()


class RemiState:
    """Per-sample decoding state of a batch, updated once per drawn id.

    Every field is a Python list with one entry per row: B is a handful of samples, and
    updating a few ints per row costs a fraction of one numpy call per field.

    ``slots`` is the polyphony bookkeeping: the end ticks of up to ``slots`` notes, each new
    (non-drum) note replacing the one that ends first; with at most that many notes sounding
    at once (what the polyphony rule keeps) it holds every sounding note.
    """

    def __init__(self, vocab: RemiVocab, *, scale: np.ndarray, slots: int = 1) -> None:
        self.vocab = vocab
        self.on_scale = [bool(x) for x in scale]  # (128,): what counts as chromatic
        self.n_slots = slots

    def start(self, seq: torch.Tensor) -> None:
        """Follow the start ids ``(B, P)`` (BOS and the primer)."""
        v, b = self.vocab, seq.shape[0]
        self.bars = [0] * b  # bars begun (1 = in the first bar)
        self.bar_start = [0] * b
        self.bar_ticks = [v.default_bar] * b
        self.den = [v.default_den] * b
        self.tick = [0] * b
        self.last_pos = [-1] * b  # Position in this bar, -1 = none yet
        self.timesig = [-1] * b  # id of the last TimeSig, -1 = none
        self.program = [program_row(0)] * b  # pitch-table row
        self.pending = [-1] * b  # pitch of the note being written
        self.pending_chromatic = [False] * b
        self.last_pitch = [-1] * b  # pitch of the last complete note
        self.notes = [0] * b  # complete non-drum notes
        self.heard = [False] * b  # any complete note yet, drums too
        self.chromatic = [0] * b  # of which off the scale
        self.ends = [[-1] * self.n_slots for _ in range(b)]
        self.prev_kind = [SPECIAL] * b
        self.last_kind = [SPECIAL] * b
        self.token = [0] * b
        self.done = [False] * b
        for column in seq.T.tolist():
            self.step(column)

    def step(self, tokens: Iterable[int]) -> None:
        """Follow one id per row (ints, or a numpy row)."""
        for r, token in enumerate(tokens):
            self._step_row(r, int(token))

    def _step_row(self, r: int, token: int) -> None:
        v = self.vocab
        kind, value = v.kinds[token], v.values[token]
        if kind == BAR:
            self.bars[r] += 1
            if self.bars[r] > 1:
                self.bar_start[r] += self.bar_ticks[r]
            self.tick[r], self.last_pos[r] = self.bar_start[r], -1
        elif kind == TIMESIG:
            self.timesig[r] = token
            self.bar_ticks[r], self.den[r] = v.bar_ticks_of[token], v.dens_of[token]
        elif kind == POSITION:
            if self.bars[r] == 0:
                self.bars[r] = 1
            self.tick[r] = self.bar_start[r] + value * v.tpp[self.den[r]]
            self.last_pos[r] = value
        elif kind == PROGRAM:
            self.program[r] = value + 1
        elif kind in (PITCH, PITCHDRUM):
            self.pending[r] = value
            self.pending_chromatic[r] = not self.on_scale[value & 127] and self.program[r] != 0
        elif kind == DURATION:
            self._note(r, token)
        elif kind == EOS:
            self.done[r] = True
        self.prev_kind[r], self.last_kind[r] = self.last_kind[r], kind
        self.token[r] = token

    def _note(self, r: int, token: int) -> None:
        """A Duration id completes a note where Pitch (and Velocity) came just before."""
        prev, last = self.prev_kind[r], self.last_kind[r]
        if self.vocab.velocities:
            made = last == VELOCITY and prev in (PITCH, PITCHDRUM)
        else:
            made = last in (PITCH, PITCHDRUM)
        if not made:
            return
        self.heard[r] = True
        if self.program[r] != 0:
            ends = self.ends[r]
            ends[ends.index(min(ends))] = self.tick[r] + self.vocab.dur_ticks_of[self.den[r]][token]
            self.notes[r] += 1
            self.chromatic[r] += self.pending_chromatic[r]
            self.last_pitch[r] = self.pending[r]
        self.pending[r], self.pending_chromatic[r] = -1, False

    def update(self, token: torch.Tensor) -> None:
        self.step(token.tolist())

    def sounding(self, r: int, tick: int) -> int:
        """Notes of row ``r`` sounding at ``tick`` (all of them started before it)."""
        return sum(end > tick for end in self.ends[r])
