"""The musician's hard constraints — key, range, polyphony, length — as one request per call.

:class:`Musical` reads them from :class:`~midiforge.sampling.options.GenerateOptions` and holds
what every family's sampler needs: a pitch table per program (key ∩ range), the chromatic
allowance, the polyphony limit and the piece's end. Each family applies it its own way:

* token models (transformer, lstm, gru): logits masks, :mod:`midiforge.sampling.token_rules`;
* the multi-head LSTM: :class:`NoteRules` masks the pitch head and places each note;
* diffusion: :class:`DiffusionRules` projects pitches at every step and filters the result.

How each rule reads, the same for every family:

key
    Pitched notes lie on the key's scale (:data:`midiforge.pitches.MODES`). With
    ``chromatic = c > 0`` a note off the scale is allowed when it lies a semitone from the note
    before it, it lasts at most :data:`CHROMATIC_MAX_BEATS`, and the sample's off-scale notes,
    this one counted, stay at most ``c`` of its notes (a passing or neighbour tone, rationed).
range
    Pitched notes lie in ``LOW..HIGH`` (both included); a per-instrument entry applies to every
    program its name can mean (:func:`midiforge.instruments.candidates`), the unnamed entry to
    the rest. Drums are exempt from key and range (their "pitch" picks a sound).
polyphony
    A note starts only where fewer than ``max_polyphony`` notes sound (start <= t < end).
    Checking at each onset is enough: of the notes sounding at any moment, the last one
    started saw all the others sounding at its own onset.
length
    ``bars = N``: the piece (primer included) is exactly N bars; ``seconds = S``: the whole
    bars that fit in S seconds at :data:`~midiforge.sampling.options.TEMPO_BPM` (at least
    one). No note ends after the last bar line, and the written file ends on it (a marker
    there), so a last bar of rests still counts.
chords
    A steer at sampling time, and for a token run prepared with ``--controls chords`` also a
    learned control (below). Bar ``k`` of the piece (0-based,
    primer bars counted) has chord ``k % len(progression)`` (:mod:`midiforge.chords`); ``N``
    bars are free. Token models and the multi-head LSTM add :data:`CHORD_BONUS_NATS` to the
    logits of pitches whose pitch class is a tone of the bar's chord (drums untouched), then
    shift the pitch ids so their total probability is unchanged: the steer picks which pitch,
    not how many notes. Diffusion moves the pitches of notes on a beat to the nearest chord
    tone allowed by key and range, after every denoising step and in the decoded piece.
    It runs after key and range, which stay hard: a chord tone off the key is never forced.
    ``chord_steer=False`` leaves only the learned control.
learned controls (token runs prepared with ``prepare --controls``)
    ``chords``, ``density`` (pitched notes per bar) and ``polyphony`` (pitched notes per
    onset), one value or one per bar, repeating: after each ``Bar``/``TimeSig`` the sampler
    writes the bar's control tokens (:mod:`midiforge.sampling.control_rule`, a mask of one id),
    which the model was trained to follow; without a request it writes its own. A run without
    density or polyphony tokens refuses ``density`` / ``polyphony``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.pitches import (
    N_PITCHES,
    N_PROGRAMS,
    note_name,
    range_table,
    scale_pitches,
)
from midiforge.sampling.options import TEMPO_BPM, GenerateOptions

CHROMATIC_MAX_BEATS = 1.0  # longest off-scale note allowed by ``chromatic``
# logit bonus (nats, at temperature 1) of a pitch on the bar's chord, chosen by the sweep in
# docs/benchmarks.md ("Chords (issue 16)")
CHORD_BONUS_NATS = 3.0
END_MARKER = "end"  # the text of the marker written on the piece's last bar line
SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True)
class Musical:
    """The hard constraints of one ``generate`` call (all off by default)."""

    key: str | None = None
    chromatic: float = 0.0
    range: str | None = None
    max_polyphony: int | None = None
    bars: int | None = None
    seconds: float | None = None
    chords: str | None = None  # a progression, as parse_progression writes it
    chord_bonus: float = CHORD_BONUS_NATS
    chord_steer: bool = True  # False: with --chords, only the learned chord tokens
    density: str | None = None  # pitched notes per bar, one number per bar, repeating
    polyphony: str | None = None  # pitched notes per onset, one number per bar, repeating

    @classmethod
    def from_options(cls, opts: GenerateOptions) -> Musical:
        return cls(
            opts.key, opts.chromatic, opts.range, opts.max_polyphony, opts.bars, opts.seconds,
            opts.chords, CHORD_BONUS_NATS,  # read per call: bench/chords.py sweeps it
            opts.chord_steer, opts.density, opts.polyphony,
        )  # fmt: skip

    @property
    def active(self) -> bool:
        """A constraint or the chord steer is asked (what every family's rules read)."""
        return bool(self.key or self.range or self.max_polyphony or self.has_length or self.chords)

    @property
    def asks_controls(self) -> bool:
        """Learned density or polyphony tokens are asked (token runs only)."""
        return bool(self.density or self.polyphony)

    @property
    def steers_chords(self) -> bool:
        """The chord steer is on: chords asked, and not turned off for the learned tokens."""
        return bool(self.chords) and self.chord_steer

    def chord_table(self) -> np.ndarray | None:
        """``(K, 128)`` bool: row ``k`` marks the pitches on chord ``k`` (None: no chords).

        Bar ``b`` (0-based) uses row ``b % K``; an ``N`` row is all False (nothing steered).
        """
        if not self.chords:
            return None
        from midiforge.chords import progression, tone_table

        classes = tone_table(progression(self.chords))  # (K, 12)
        return classes[:, np.arange(N_PITCHES) % 12]

    @property
    def has_length(self) -> bool:
        return self.bars is not None or self.seconds is not None

    def scale(self) -> np.ndarray:
        """``(128,)`` bool: on the key's scale (all True without a key)."""
        return np.array(scale_pitches(self.key)) if self.key else np.ones(N_PITCHES, bool)

    def range_table(self) -> np.ndarray:
        """``(129, 128)`` bool: pitches in range per program row (drums: all)."""
        return range_table(self.range)

    def pitch_table(self) -> np.ndarray:
        """``(129, 128)`` bool: the pitches a note may take per program row (key ∩ range)."""
        table = self.range_table()
        table[1:] &= self.scale()[None, :]
        empty = [r for r in range(1, N_PROGRAMS) if not table[r].any()]
        if empty:
            low, high = np.flatnonzero(self.range_table()[empty[0]])[[0, -1]]
            raise MidiforgeError(
                f"key: {self.key} has no pitch in the range {note_name(low)}-{note_name(high)}; "
                "widen the range or pick another key"
            )
        return table

    def end_beats(self, bar_beats: float) -> float | None:
        """Beats from the piece's start to its last bar line (None: free length)."""
        if self.bars is not None:
            return self.bars * bar_beats
        if self.seconds is not None:
            beats = self.seconds * TEMPO_BPM / SECONDS_PER_MINUTE
            return max(math.floor(beats / bar_beats + 1e-9), 1) * bar_beats
        return None


def check_primer_bars(musical: Musical, primer_bars: int) -> None:
    """A primer of ``primer_bars`` bars must leave room under ``bars``."""
    if musical.bars is not None and primer_bars > musical.bars:
        raise MidiforgeError(
            f"bars: {musical.bars} is shorter than the primer's {primer_bars} bars; ask for at "
            f"least {primer_bars} or use --primer-bars"
        )


def add_end_marker(score, end_tick: int) -> None:
    """Mark the piece's last bar line, so the file ends there even after bars of rests."""
    from symusic import TextMeta

    score.markers.append(TextMeta(int(end_tick), END_MARKER))
