"""Runtime augmentation of training windows: transposition, velocity changes, time stretch.

Tokens
    A token-id lookup table per shift (``table[s][id]`` is the id of the same token moved by
    ``s`` steps), built once from the vocabulary: ``Pitch_60`` → ``Pitch_62`` for +2 semitones,
    ``Velocity_63`` → the next velocity bin for +1, and a learned chord control
    (``Chord_A:min``, :mod:`midiforge.data.controls`) → the chord a shift away (``Chord_B:min``),
    so the label still names what the bar plays. Applying it to a window is one fancy-index,
    far cheaper than decoding to a Score, calling MidiTok's ``augment_score`` and re-encoding.
    A BPE vocabulary hides pitches inside merged tokens, so tables refuse BPE tokenizers.
    A dataset without ``tokenizer.json`` (the published benchmarks' encodings) names its pitch
    ids in the manifest instead (``tokenizer.pitch_ids``), so ``train.augment`` transposes its
    training windows too.
    Time stretch is not offered for tokens: durations and positions are quantized categories.
Notes
    Plain numpy on the raw note fields: transposition (frequency recomputed), time stretch of
    onset/duration/delta, velocity scaling, each drawn uniformly from its range.
"""

from __future__ import annotations

import numpy as np

from midiforge.data.encode import DRUM_PROGRAM, frequency_hz
from midiforge.errors import MidiforgeError
from midiforge.pitches import SHARP_NAMES
from midiforge.schema import CONTROL_TYPES, FIELD

PITCH_PREFIXES = ("Pitch", "NoteOn", "NoteOff")  # token types that carry a pitch
VELOCITY_PREFIX = "Velocity"
CHORD_PREFIX = CONTROL_TYPES[0]  # "Chord": a learned chord control, "Chord_<root>:<quality>"
N_CLASSES = 12  # pitch classes a chord's root moves through
MIDI_PITCH_MIN, MIDI_PITCH_MAX = 0, 127
MIDI_VELOCITY_MIN, MIDI_VELOCITY_MAX = 1, 127
NO_PITCH = -1  # marks ids that carry no pitch in TokenShifter.pitch_of
# Manifest ``tokenizer`` entry of a tokenizer-less dataset: {"first_id", "low", "high"}, the
# pitches low..high (MIDI) being the consecutive ids first_id.. (midiforge.metrics.benchmarks).
PITCH_IDS_KEY = "pitch_ids"


class TokenShifter:
    """Transpose and change velocity of token-id windows through lookup tables.

    Parameters
    ----------
    vocab
        The tokenizer's base vocabulary (``tokenizer.vocab``: token string → id).
    pitch_range
        Inclusive (low, high) MIDI pitches the vocabulary can express; shifts that would
        leave it are never drawn.
    """

    def __init__(self, vocab: dict[str, int], pitch_range: tuple[int, int]) -> None:
        size = max(vocab.values()) + 1
        self.low, self.high = pitch_range
        self.pitch_of = np.full(size, NO_PITCH, np.int64)  # id → pitch carried, or -1
        self._pitch_id: dict[tuple[str, int], int] = {}
        self._chord_id: dict[tuple[int, str], int] = {}  # (root pitch class, quality) → id
        velocities: list[tuple[int, int]] = []
        for token, idx in vocab.items():
            kind, _, value = token.partition("_")
            if kind in PITCH_PREFIXES and value.lstrip("-").isdigit():
                self.pitch_of[idx] = int(value)
                self._pitch_id[(kind, int(value))] = idx
            elif kind == VELOCITY_PREFIX and value.isdigit():
                velocities.append((int(value), idx))
            elif kind == CHORD_PREFIX and value.partition(":")[0] in SHARP_NAMES:
                root, _, quality = value.partition(":")
                self._chord_id[(SHARP_NAMES.index(root), quality)] = idx
        self._identity = np.arange(size, dtype=np.int64)
        self._velocity_ids = np.array([i for _, i in sorted(velocities)], np.int64)
        self._velocity_rank = np.full(size, -1, np.int64)  # id → index among velocity bins
        self._velocity_rank[self._velocity_ids] = np.arange(len(self._velocity_ids))
        self._tables: dict[int, np.ndarray] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer) -> TokenShifter:
        """Build from a MidiTok tokenizer; a BPE-trained one is refused (see module doc)."""
        if getattr(tokenizer, "is_trained", False):
            raise MidiforgeError(
                "transpose/velocity_shift: the dataset's tokenizer uses BPE, whose merged ids "
                "hide pitches; prepare the dataset without bpe_vocab or set both to 0"
            )
        low, high = tokenizer.config.pitch_range
        return cls(tokenizer.vocab, (int(low), int(high) - 1))

    @classmethod
    def for_pitch_block(cls, vocab_size: int, first_id: int, low: int, high: int) -> TokenShifter:
        """For an encoding whose MIDI pitches ``low..high`` are the ids ``first_id..``; every
        other id of the ``vocab_size`` ids carries no pitch and is never moved."""
        pitch_ids = {f"Pitch_{p}": first_id + p - low for p in range(low, high + 1)}
        taken = set(pitch_ids.values())
        others = {f"Id_{i}": i for i in range(vocab_size) if i not in taken}
        return cls({**others, **pitch_ids}, (low, high))

    @classmethod
    def for_dataset(cls, data) -> TokenShifter:
        """For a PreparedDataset: its manifest's pitch block if it names one, else its tokenizer."""
        block = data.manifest["tokenizer"].get(PITCH_IDS_KEY)
        if block is None:
            return cls.for_tokenizer(data.tokenizer)
        first, low, high = (int(block[k]) for k in ("first_id", "low", "high"))
        return cls.for_pitch_block(data.vocab_size, first, low, high)

    def _pitch_table(self, shift: int) -> np.ndarray:
        if shift not in self._tables:
            table = self._identity.copy()
            for (kind, pitch), idx in self._pitch_id.items():
                target = self._pitch_id.get((kind, pitch + shift))
                if target is not None:
                    table[idx] = target
            for (root, quality), idx in self._chord_id.items():
                table[idx] = self._chord_id.get(((root + shift) % N_CLASSES, quality), idx)
            self._tables[shift] = table
        return self._tables[shift]

    def transpose(self, ids: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
        """Shift every pitch token by one random amount in [-max_shift, max_shift] semitones,
        chosen so every pitch of the window stays inside the vocabulary's range."""
        pitches = self.pitch_of[ids]
        pitches = pitches[pitches != NO_PITCH]
        if max_shift <= 0 or len(pitches) == 0:
            return ids
        lo = max(-max_shift, self.low - int(pitches.min()))
        hi = min(max_shift, self.high - int(pitches.max()))
        if lo > hi:
            return ids
        shift = int(rng.integers(lo, hi + 1))
        return self._pitch_table(shift)[ids] if shift else ids

    def shift_velocity(
        self, ids: np.ndarray, max_bins: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Move every velocity token by one random number of bins in [-max_bins, max_bins],
        clipped to the first/last bin."""
        if max_bins <= 0 or len(self._velocity_ids) == 0:
            return ids
        shift = int(rng.integers(-max_bins, max_bins + 1))
        rank = self._velocity_rank[ids]
        is_velocity = rank >= 0
        if not shift or not is_velocity.any():
            return ids
        moved = np.clip(rank[is_velocity] + shift, 0, len(self._velocity_ids) - 1)
        out = ids.copy()
        out[is_velocity] = self._velocity_ids[moved]
        return out


def augment_notes(
    notes: np.ndarray,
    rng: np.random.Generator,
    *,
    transpose: int = 0,
    time_stretch: float = 0.0,
    velocity_scale: float = 0.0,
) -> np.ndarray:
    """A randomly augmented copy of a ``[n, len(NOTE_FIELDS)]`` note window.

    Parameters
    ----------
    transpose
        Largest shift in semitones; the drawn shift keeps every non-drum pitch in 0..127.
        Drum notes (program -1) keep their pitch, which names an instrument.
    time_stretch
        Relative range: onset, duration and delta are multiplied by one factor drawn from
        [1 - time_stretch, 1 + time_stretch].
    velocity_scale
        Relative range of one velocity factor; results are rounded and clipped to 1..127.
    """
    out = np.array(notes, dtype=np.float32, copy=True)
    if len(out) == 0:
        return out
    tonal = out[:, FIELD["program"]] != DRUM_PROGRAM
    if transpose > 0 and tonal.any():
        pitches = out[tonal, FIELD["pitch"]]
        lo = max(-transpose, MIDI_PITCH_MIN - int(pitches.min()))
        hi = min(transpose, MIDI_PITCH_MAX - int(pitches.max()))
        if lo <= hi:
            out[tonal, FIELD["pitch"]] += int(rng.integers(lo, hi + 1))
            out[:, FIELD["frequency"]] = frequency_hz(out[:, FIELD["pitch"]])
    if time_stretch > 0:
        factor = rng.uniform(1.0 - time_stretch, 1.0 + time_stretch)
        for name in ("onset", "duration", "delta"):
            out[:, FIELD[name]] *= factor
    if velocity_scale > 0:
        factor = rng.uniform(1.0 - velocity_scale, 1.0 + velocity_scale)
        velocity = np.round(out[:, FIELD["velocity"]] * factor)
        out[:, FIELD["velocity"]] = np.clip(velocity, MIDI_VELOCITY_MIN, MIDI_VELOCITY_MAX)
    return out
