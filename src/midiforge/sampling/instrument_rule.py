"""Which instruments a token model may write, and a steer so that each of them plays.

A tokenization with Program tokens in one stream (MidiTok ``use_programs=True``; REMI reads
``Bar Position Program_33 Pitch_40 Velocity_63 Duration_1.0.8 Program_-1 PitchDrum_36 ...``)
names each note's instrument in the Program token before it. :class:`InstrumentConstraint`
is the instruments rule of :mod:`midiforge.sampling.constraints` (second, after the grammar):

- **mask**: an id holding a ``Program_p`` token of a program that was not asked for may not be
  drawn, nor a note before the sample's first allowed Program token (MidiTok would decode it
  as program 0). With BPE an id stands for several base tokens; it is forbidden if any of
  them is such a Program token (or if it opens with such a note).
- **steer**: a mask says which instruments *may* play, not that each does: a small model
  trained on band MIDI will happily write drums for a whole piece when "bass,drums" is
  allowed. So, with k instruments allowed and N notes generated so far in a sample, each
  instrument's share is N / k, and one that has played c < N / k notes gets

      bonus = STEER_NATS * (1 - c / (N / k))

  added to the logits of its Program ids: the full :data:`STEER_NATS` while it has played
  nothing, fading to 0 as it reaches its share, and nothing before the first note. The
  bonus only moves the choice among Program tokens (where the grammar allows one), never
  the rhythm or the pitches. Counting starts after the primer, so every instrument gets its
  share of what is *generated*. ``steer=0`` turns it off (``bench/instrument_steer.py``
  measures both).

:func:`continue_programs` maps a primer's tracks onto the programs a run learned, so a
primer's instruments are continued rather than refused for a near miss (a Slap Bass primer
for a model that knows the Finger Bass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, describe, family_of, instrument_name
from midiforge.sampling.grammar import token_type

# logit added (in nats) to the Program ids of an instrument that has played none of its share
# of the notes so far (e^4 ≈ 55 times likelier). On a tiny band model (bench/instrument_steer.py,
# 20 samples of 128 tokens) 1 nat still left an instrument silent in 10-15% of the samples, 2
# and up in none; 4 lifts the quietest instrument to about half its even share of the notes,
# 8 pushes towards strictly even shares, which band music is not (drums play most).
STEER_NATS = 4.0
PROGRAM = "Program"
# token types that start a note, in the tokenizations that can carry Program tokens
NOTE_TYPES = frozenset(
    {"Pitch", "PitchDrum", "NoteOn", "DrumOn", "PitchIntervalTime", "PitchIntervalChord"}
)
NOTE, OTHER = -1, -2  # events of an id besides "Program of slot s": a note, a program not allowed


def id_tokens(tokenizer: Any) -> list[tuple[str, ...]]:
    """The base tokens each id stands for: itself, or with BPE the tokens merged into it."""
    if not getattr(tokenizer, "is_trained", False):
        out: list[tuple[str, ...]] = [()] * len(tokenizer.vocab)
        for token, i in tokenizer.vocab.items():
            out[i] = (token,)
        return out
    learned = tokenizer._vocab_learned_bytes_to_tokens  # MidiTok 3: merged bytes -> base tokens
    out = [()] * len(tokenizer.vocab_model)
    for chars, i in tokenizer.vocab_model.items():
        out[i] = tuple(learned[chars])
    return out


def program_of(token: str) -> int | None:
    """``"Program_33"`` → 33, ``"Program_-1"`` → -1 (drums); other tokens → None."""
    kind, _, value = token.partition("_")
    return int(value) if kind == PROGRAM else None


def tokenizer_programs(tokenizer: Any) -> list[int]:
    """The programs the tokenizer has a Program token for; empty for a merged (one-instrument)
    tokenization."""
    if not getattr(tokenizer.config, "use_programs", False):
        return []
    found = (program_of(t) for t in tokenizer.vocab)
    return sorted(p for p in found if p is not None)


def continue_programs(score: Any, known: Sequence[int]) -> tuple[Any, list[int]]:
    """The primer ``score`` with each track's program one the run learned, and those programs.

    A program the run knows stays; another becomes the run's first known program of the same
    GM family (drums only ever drums); a track with neither is a one-line error naming what the
    run knows. The score is changed in place (it is the sampler's own copy).
    """
    known = sorted(int(p) for p in known)
    programs: list[int] = []
    for track in score.tracks:
        if track.note_num() == 0:
            continue
        program = DRUMS if track.is_drum else int(track.program)
        if program not in known:
            family = family_of(program)
            same = [p for p in known if family_of(p) == family]
            if not same:
                raise MidiforgeError(
                    f"primer: its {instrument_name(program)} ({program}) track has no "
                    f"instrument of the {family} family in this model; it knows {describe(known)}"
                )
            program = same[0]
            track.program = program  # same family, so never drums for a pitched track
        if program not in programs:
            programs.append(program)
    return score, programs


class InstrumentConstraint:
    """Only ``programs``' Program tokens may be drawn, each steered towards its share of notes.

    Parameters
    ----------
    tokenizer
        The run's MidiTok tokenizer; it must have a Program token for every program asked for.
    programs
        GM programs (-1 = drums) that may play, e.g. ``[33, -1]``.
    steer
        :data:`STEER_NATS`, or 0 for the mask alone (see the module docstring for the rule).
    """

    def __init__(self, tokenizer: Any, programs: Sequence[int], *, steer: float = STEER_NATS):
        self.programs = [int(p) for p in programs]
        have = set(tokenizer_programs(tokenizer))
        missing = [p for p in self.programs if p not in have]
        if missing or not self.programs:
            raise MidiforgeError(
                f"instruments: the run's tokenizer has no Program token for "
                f"{describe(missing) or 'an empty request'}; it has {describe(sorted(have))}"
            )
        slot = {p: s for s, p in enumerate(self.programs)}
        pieces = id_tokens(tokenizer)
        k = len(self.programs)
        self.ok = torch.ones(len(pieces), dtype=torch.bool)  # (V,): no forbidden Program inside
        self.opens_note = torch.zeros(len(pieces), dtype=torch.bool)  # (V,): a note comes first
        first = torch.full((len(pieces),), k, dtype=torch.long)  # (V,): slot steered; k = none
        self.events: list[tuple[int, ...]] = []
        for i, tokens in enumerate(pieces):
            events = []
            for token in tokens:
                program = program_of(token)
                if program is not None:
                    s = slot.get(program, OTHER)
                    if s == OTHER:
                        self.ok[i] = False
                    elif first[i] == k:
                        first[i] = s
                    events.append(s)
                elif token_type(token) in NOTE_TYPES:
                    events.append(NOTE)
            self.events.append(tuple(events))
            self.opens_note[i] = bool(events) and events[0] == NOTE
        self.first = first
        self.steer_nats = float(steer)
        self.counts = torch.zeros(0, k)  # (B, k): notes each program has played, per sample
        self.current: list[int] = []  # per sample: the slot of the last Program token, or OTHER
        self.device = torch.device("cpu")

    def _follow(self, row: int, token: int, count: bool) -> None:
        for event in self.events[token]:
            if event == NOTE:
                if count and self.current[row] >= 0:
                    self.counts[row, self.current[row]] += 1
            else:
                self.current[row] = event

    def start(self, seq: torch.Tensor) -> None:
        self.counts = torch.zeros(seq.shape[0], len(self.programs))
        self.current = [OTHER] * seq.shape[0]
        self.device = seq.device
        for row, ids in enumerate(seq.tolist()):
            for token in ids:  # the primer sets the current program; its notes are not counted
                self._follow(row, token, count=False)

    def allowed(self) -> torch.Tensor | None:
        unset = torch.tensor([c < 0 for c in self.current])[:, None]  # (B, 1): no Program yet
        return (self.ok & ~(self.opens_note & unset)).to(self.device)  # (B, V)

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        k = len(self.programs)
        if self.steer_nats == 0 or k < 2:
            return logits
        share = self.counts.sum(dim=1, keepdim=True) / k  # (B, 1): notes each program is due
        behind = torch.where(share > 0, (1 - self.counts / share.clamp_min(1e-9)).clamp(0, 1), 0)
        bonus = torch.cat([behind, torch.zeros(len(self.current), 1)], dim=1) * self.steer_nats
        return logits + bonus[:, self.first].to(logits.device, logits.dtype)  # (B, V)

    def update(self, token: torch.Tensor) -> None:
        for row, i in enumerate(token.tolist()):
            self._follow(row, i, count=True)

    def played(self) -> list[dict[int, int]]:
        """Per sample: program → notes generated so far (what the steer balances)."""
        return [
            {p: int(c) for p, c in zip(self.programs, row, strict=True)}
            for row in self.counts.tolist()
        ]
