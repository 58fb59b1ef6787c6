"""Where each sample of a batch stands in its REMI token stream, followed id by id.

The musician's token rules (:mod:`midiforge.sampling.token_rules`) need the time of the next
note, the pitch of the note being written, the program, and when the notes already written
end. :class:`RemiVocab` decodes the tokenizer's vocabulary once into lookup arrays (kind and
value of every id, ticks of every Duration per time-signature denominator); :class:`RemiState`
then updates a handful of ``(B,)`` arrays per drawn id.

Time follows MidiTok's own REMI decoder exactly, in its ticks (``tokenizer.time_division`` per
quarter note): ``Bar`` opens a bar (the first one at tick 0, each further one a bar after the
last), ``TimeSig_n/d`` sets the bar's length, ``Position_k`` is ``k`` positions after the bar
line, and a note exists where ``Pitch`` (or ``PitchDrum``), ``Velocity`` and ``Duration``
follow each other, starting at the current tick. A test decodes real files both ways.

The arrays are numpy: B is a handful of samples, and a numpy operation on a few hundred
booleans costs about a microsecond where a torch one costs several.
"""

from __future__ import annotations

import numpy as np
import torch

from midiforge.errors import MidiforgeError
from midiforge.pitches import program_row

OTHER, BAR, TIMESIG, POSITION, PROGRAM, PITCH, PITCHDRUM, VELOCITY, DURATION, EOS, SPECIAL = range(
    11
)
KIND_OF = {
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
    MASK and unknown kinds allow anything)."""
    return frozenset({*kinds, SPECIAL, OTHER})


# where the grammar allows each kind next: the rules skip work no row can need this step
PITCH_AFTER = _after(POSITION, DURATION, TIMESIG, PROGRAM)
POSITION_AFTER = _after(DURATION, TIMESIG)
DURATION_AFTER = _after(VELOCITY, PITCH, PITCHDRUM)
TIMESIG_AFTER = _after(BAR)
MID_NOTE = np.zeros(SPECIAL + 1, bool)  # a note is started and not finished after these
MID_NOTE[[POSITION, PROGRAM, PITCH, PITCHDRUM, VELOCITY]] = True
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


def check_tokenizer(tokenizer) -> None:
    """The rules read plain REMI ids: refuse BPE and other tokenizations by name."""
    name = type(tokenizer).__name__
    if name != "REMI":
        raise MidiforgeError(
            f"key/range/max_polyphony/bars/seconds: the run's tokenizer is {name}; these rules "
            "read REMI tokens (prepare --tokenizer remi), or use a note or diffusion run"
        )
    if getattr(tokenizer, "is_trained", False):
        raise MidiforgeError(
            "key/range/max_polyphony/bars/seconds: the run's tokenizer uses BPE, whose merged "
            "ids hide pitches and durations; use a run prepared without --bpe-vocab"
        )
    bad = sorted({t.split("_")[0] for t in tokenizer.vocab} & set(UNSUPPORTED))
    if bad:
        raise MidiforgeError(
            f"key/range/...: the run's REMI tokenizer has {', '.join(bad)} tokens, which these "
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
        self.dur_ticks = np.zeros((len(self.dens), size), np.int64)  # Duration ids, per den
        for token, i in vocab.items():
            kind, _, value = token.partition("_")
            self.kind[i] = KIND_OF.get(kind, OTHER)
            if kind in ("Position", "Pitch", "PitchDrum", "Program"):
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
        self.velocities = bool(tokenizer.config.use_velocities)


class RemiState:
    """Per-sample decoding state of a batch, updated once per drawn id.

    ``slots`` is the polyphony bookkeeping: the end ticks of up to ``slots`` notes, each new
    (non-drum) note replacing the one that ends first; with at most that many notes sounding
    at once (what the polyphony rule keeps) it holds every sounding note.
    """

    def __init__(self, vocab: RemiVocab, *, scale: np.ndarray, slots: int = 1) -> None:
        self.vocab = vocab
        self.on_scale = scale  # (128,) bool: what counts as chromatic
        self.n_slots = slots

    def start(self, seq: torch.Tensor) -> None:
        """Follow the start ids ``(B, P)`` (BOS and the primer)."""
        v, b = self.vocab, seq.shape[0]
        self.bars = np.zeros(b, np.int64)  # bars begun (1 = in the first bar)
        self.bar_start = np.zeros(b, np.int64)
        self.bar_ticks = np.full(b, v.default_bar, np.int64)
        self.den = np.full(b, v.default_den, np.int64)
        self.tick = np.zeros(b, np.int64)
        self.last_pos = np.full(b, -1, np.int64)  # Position in this bar, -1 = none yet
        self.timesig = np.full(b, -1, np.int64)  # id of the last TimeSig, -1 = none
        self.program = np.full(b, program_row(0), np.int64)  # pitch-table row
        self.pending = np.full(b, -1, np.int64)  # pitch of the note being written
        self.pending_chromatic = np.zeros(b, bool)
        self.last_pitch = np.full(b, -1, np.int64)  # pitch of the last complete note
        self.notes = np.zeros(b, np.int64)  # complete non-drum notes
        self.chromatic = np.zeros(b, np.int64)  # of which off the scale
        self.ends = np.full((b, self.n_slots), -1, np.int64)
        self.kinds = (np.full(b, SPECIAL, np.int64), np.full(b, SPECIAL, np.int64))  # prev, last
        self.token = np.zeros(b, np.int64)
        self.done = np.zeros(b, bool)
        self.after: set[int] = {SPECIAL}
        self.ended: set[int] = set()
        for column in seq.T.cpu().numpy():
            self.step(column)

    @property
    def last_kind(self) -> np.ndarray:
        return self.kinds[1]

    def step(self, token: np.ndarray) -> None:
        """Follow one id per row ``(B,)`` (numpy); each branch runs only for kinds drawn."""
        v = self.vocab
        kind, value = v.kind[token], v.value[token]
        drawn = set(kind.tolist())  # a set test costs far less than ndarray.any()
        self.token = token
        if BAR in drawn:
            bar = kind == BAR
            self.bars = self.bars + bar
            advance = bar & (self.bars > 1)
            self.bar_start = np.where(advance, self.bar_start + self.bar_ticks, self.bar_start)
            self.tick = np.where(bar, self.bar_start, self.tick)
            self.last_pos = np.where(bar, -1, self.last_pos)
        if TIMESIG in drawn:
            ts = kind == TIMESIG
            self.timesig = np.where(ts, token, self.timesig)
            self.bar_ticks = np.where(ts, v.bar_ticks[token], self.bar_ticks)
            self.den = np.where(ts, v.den_of[token], self.den)
        if POSITION in drawn:
            pos = kind == POSITION
            self.bars = np.where(pos & (self.bars == 0), 1, self.bars)
            self.tick = np.where(pos, self.bar_start + value * v.tpp_of[self.den], self.tick)
            self.last_pos = np.where(pos, value, self.last_pos)
        if PROGRAM in drawn:
            self.program = np.where(kind == PROGRAM, value + 1, self.program)
        if PITCH in drawn or PITCHDRUM in drawn:
            pitch = (kind == PITCH) | (kind == PITCHDRUM)
            self.pending = np.where(pitch, value, self.pending)
            off = ~self.on_scale[value & 127] & (self.program != 0)
            self.pending_chromatic = np.where(pitch, off, self.pending_chromatic)
        if DURATION in drawn:
            self._note(kind == DURATION, token)
        if EOS in drawn:
            self.done |= kind == EOS
            self.ended = {EOS}  # some row is done (a set, tested like ``after``)
        self.kinds = (self.kinds[1], kind)
        self.after = drawn  # the kinds of the ids just drawn

    def may(self, after: frozenset[int]) -> bool:
        """Some row's last token is of a kind in ``after`` (e.g. :data:`PITCH_AFTER`)."""
        return not self.after.isdisjoint(after)

    def _note(self, duration: np.ndarray, token: np.ndarray) -> None:
        """Duration ids complete a note where Pitch (and Velocity) came just before."""
        prev, last = self.kinds
        if self.vocab.velocities:
            made = duration & (last == VELOCITY) & ((prev == PITCH) | (prev == PITCHDRUM))
        else:
            made = duration & ((last == PITCH) | (last == PITCHDRUM))
        pitched = made & (self.program != 0)
        if pitched.any():
            end = self.tick + self.vocab.dur_ticks[self.den, token]
            rows = np.flatnonzero(pitched)
            slot = self.ends[rows].argmin(axis=1)
            self.ends[rows, slot] = end[rows]
            self.notes += pitched
            self.chromatic += pitched & self.pending_chromatic
            self.last_pitch = np.where(pitched, self.pending, self.last_pitch)
        self.pending = np.where(made, -1, self.pending)
        self.pending_chromatic &= ~made

    def update(self, token: torch.Tensor) -> None:
        self.step(token.cpu().numpy())

    def sounding(self, ticks: np.ndarray) -> np.ndarray:
        """Notes sounding at ``ticks`` ``(B, K)`` → counts ``(B, K)`` (all start before)."""
        return (self.ends[:, :, None] > ticks[:, None, :]).sum(axis=1)

    def position_ticks(self) -> np.ndarray:
        """``(B, n_positions)``: the tick each Position id would move to."""
        tpp = self.vocab.tpp_of[self.den]
        return self.bar_start[:, None] + self.vocab.position_of[None, :] * tpp[:, None]

    def forward_positions(self) -> np.ndarray:
        """``(B, n_positions)`` bool: Positions after the last one, inside the bar."""
        tpp = self.vocab.tpp_of[self.den]
        k = self.vocab.position_of[None, :]
        return (k > self.last_pos[:, None]) & (k * tpp[:, None] < self.bar_ticks[:, None])
