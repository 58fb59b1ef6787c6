"""The two encodings of a piece: MidiTok token ids and a per-note feature array.

Tokens
    Any single-stream MidiTok tokenization (REMI by default). Each file becomes one flat list of
    ids (:func:`score_to_ids`), optionally BPE-merged; :func:`ids_to_score` is its inverse up to
    the tokenizer's quantization grid. Multi-vocabulary tokenizations (CPWord, Octuple, MuMIDI)
    emit several ids per step; the dataset format stores one id per position, so they are
    rejected with an error that names the single-stream alternatives.

Notes
    One row per note, columns :data:`midiforge.schema.NOTE_FIELDS`, time in beats (quarter
    notes), rows sorted by (onset, pitch) so a chord is its notes in ascending pitch with delta 0.
    :func:`notes_from_score` and :func:`score_from_notes` are an exact round trip for notes that
    lie on the tick grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from miditok import MusicTokenizer, TokenizerConfig, TokSequence
from symusic import Note, Score, Tempo, TimeSignature, Track

from midiforge.data import remi_ids
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, instrument_name
from midiforge.pitches import frequency_hz
from midiforge.schema import CONTROL_TYPES, FIELD, FIM_TYPE, NOTE_FIELDS
from midiforge.store.tokenizer_file import TOKENIZATIONS, tokenizer_class

DRUM_PROGRAM = DRUMS  # -1, MidiTok's program of a drum track
DEFAULT_TPQ = 480  # ticks per quarter note of scores we build
DEFAULT_TEMPO_BPM = 120.0  # quarter notes per minute

MULTI_VOCAB = ("cpword", "octuple", "mumidi")  # several ids per step: not storable as one stream
SPECIAL_TOKENS = ("PAD", "BOS", "EOS", "MASK")
PROGRAM_CHANGES = False  # a Program token before every note: each note's instrument explicit


def build_tokenizer(name: str, *, use_programs: bool = False, **opts: Any) -> MusicTokenizer:
    """A fresh MidiTok tokenizer by lower-case name, e.g. ``build_tokenizer("remi")``.

    Parameters
    ----------
    name
        One of :data:`midiforge.store.tokenizer_file.TOKENIZATIONS` (case-insensitive):
        the tokenizations a DATASET can store and the store can read back.
    use_programs
        Put Program tokens in one stream, so several instruments share one sequence (what
        ``prepare --tracks all`` needs). Without it a score must hold one track. The stream
        is MidiTok's ``one_token_stream_for_programs`` without ``program_changes``: a Program
        token before every note, so each note's instrument is explicit in the grammar (a
        sampler's instrument constraint holds token by token, a window cut mid-piece starts
        on the right instruments), for 11% more tokens than Program tokens only where the
        instrument changes, which also encode 11% slower here (docs/instruments.md).
    **opts
        Further :class:`miditok.TokenizerConfig` fields (``beat_res``, ``num_velocities``, ...).
    """
    key = name.lower()
    if key in MULTI_VOCAB:
        raise MidiforgeError(
            f"tokenizer {name!r} emits several ids per step, which the dataset's one-id-per-"
            f"position arrays cannot store; use one of: {', '.join(sorted(TOKENIZATIONS))}"
        )
    cls = tokenizer_class(name)  # names the accepted ones when this one is unknown
    opts.setdefault("special_tokens", list(SPECIAL_TOKENS))
    if use_programs:
        opts.setdefault("one_token_stream_for_programs", True)
        opts.setdefault("program_changes", PROGRAM_CHANGES)
    try:
        config = TokenizerConfig(use_programs=use_programs, **opts)
    except TypeError as exc:
        raise MidiforgeError(f"tokenizer options: {exc}") from None
    return cls(config)


def special_ids(tokenizer: MusicTokenizer) -> dict[str, int]:
    """Ids of the special tokens the tokenizer has, e.g. ``{"PAD": 0, "BOS": 1, ...}``."""
    vocab = tokenizer.vocab
    return {s: vocab[f"{s}_None"] for s in SPECIAL_TOKENS if f"{s}_None" in vocab}


def score_to_array(
    tokenizer: MusicTokenizer, score: Score, *, preprocessed: bool = False
) -> np.ndarray:
    """Encode ``score`` as one flat int32 array of token ids (BPE-merged if trained);
    ``preprocessed``: the score is already through ``tokenizer.preprocess_score``.

    The untrained REMI tokenizers ``prepare`` builds take :func:`midiforge.data.remi_ids.
    remi_ids` after MidiTok's own preprocessing: the same ids as ``tokenizer.encode``, without
    a Python object per token (the encoder was most of ``prepare``'s time). Any other
    tokenizer, and any score that module declines, goes through ``tokenizer.encode``.

    A tokenizer without programs encodes each track separately; then the score must have at
    most one track, because concatenating per-track streams would lose which is which.
    """
    if remi_ids.covers(tokenizer):
        score = score if preprocessed else tokenizer.preprocess_score(score)
        fast = remi_ids.remi_ids(tokenizer, score)
        if fast is not None:
            return fast.astype(np.int32)
        seq = tokenizer.encode(score, no_preprocess_score=True)
    else:
        seq = tokenizer.encode(score, no_preprocess_score=preprocessed)
    if isinstance(seq, list):
        if len(seq) > 1:
            raise MidiforgeError(
                f"score has {len(seq)} tracks but the tokenizer has no Program tokens; merge the "
                "tracks (prepare --tracks merge) or build the tokenizer with use_programs=True"
            )
        if not seq:
            return np.zeros(0, np.int32)
        seq = seq[0]
    return np.asarray(seq.ids, np.int32)


def control_ids(tokenizer: MusicTokenizer) -> set[int]:
    """Ids of the learned controls' tokens (``prepare --controls``: ``Chord_A:min``,
    ``Density_3``, ...; :mod:`midiforge.data.controls`) and of the fill-in-the-middle markers
    (``prepare --fim``, :mod:`midiforge.data.fim`); empty for a tokenizer without them."""
    kinds = {*CONTROL_TYPES, FIM_TYPE}
    return {i for t, i in tokenizer.vocab.items() if t.split("_", 1)[0] in kinds}


def _empty_score(tokenizer: MusicTokenizer) -> Score:
    """A score with no notes, at the tokenizer's resolution, tempo and 4/4 as decode writes."""
    score = Score(tokenizer.time_division)
    score.tempos.append(Tempo(0, tokenizer.default_tempo))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    return score


def score_to_ids(tokenizer: MusicTokenizer, score: Score) -> list[int]:
    """Encode ``score`` as one flat list of token ids (:func:`score_to_array` as a list)."""
    return score_to_array(tokenizer, score).tolist()


def ids_to_score(tokenizer: MusicTokenizer, ids: list[int] | np.ndarray) -> Score:
    """Decode a flat id stream (as :func:`score_to_ids` writes it) back to a Score.

    PAD/BOS/EOS/MASK ids and the learned controls' ids (:func:`control_ids`: they say what a
    bar holds, not a note) are dropped first, so a generated sequence can be passed as is.
    Tracks are named after their instrument (:func:`name_tracks`), as :func:`score_from_notes`
    names them, so both encodings give the same MIDI.
    """
    dropped = set(special_ids(tokenizer).values()) | control_ids(tokenizer)
    clean = [int(i) for i in np.asarray(ids).reshape(-1) if int(i) not in dropped]
    if not clean:
        # MidiTok's decode fails on an empty stream (a model that samples EOS at once)
        return _empty_score(tokenizer)
    if tokenizer.one_token_stream:
        return name_tracks(tokenizer.decode(clean))
    return name_tracks(tokenizer.decode([clean]))


def name_tracks(score: Score) -> Score:
    """Name every track after its GM instrument ("Acoustic Grand Piano", "Drums"), in place."""
    for track in score.tracks:
        track.name = instrument_name(DRUM_PROGRAM if track.is_drum else track.program)
    return score


class _BarBytes:
    """A sized, re-iterable view of id sequences as the per-bar byte strings BPE trains on.

    MidiTok's trainer pre-tokenizes by bar (``encode_ids_split="bar"``): merges never cross a
    bar line. This mirrors its ``TokTrainingIterator`` for ids we already have on disk, so
    training does not parse and tokenize the MIDI files a second time.
    """

    def __init__(
        self, tokenizer: MusicTokenizer, make: Callable[[], Iterable[np.ndarray]], n: int
    ) -> None:
        self.tokenizer, self.make, self.n = tokenizer, make, n
        self.bar_id = tokenizer.vocab.get("Bar_None")

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for ids in self.make():
            ids = np.asarray(ids, np.int64)
            cuts = [] if self.bar_id is None else np.flatnonzero(ids == self.bar_id).tolist()
            bounds = [0, *cuts, len(ids)]
            chunks = [ids[a:b].tolist() for a, b in itertools.pairwise(bounds) if b > a]
            if chunks:
                yield self.tokenizer._ids_to_bytes(chunks, as_one_str=True)


def train_bpe(
    tokenizer: MusicTokenizer,
    sequences: Callable[[], Iterable[np.ndarray]],
    n_sequences: int,
    vocab_size: int,
) -> None:
    """Train BPE in place on base-vocabulary id sequences (without BOS/EOS).

    ``sequences`` is called to get a fresh iterable (the trainer may read it more than once).
    """
    base = len(tokenizer.vocab)
    if vocab_size <= base:
        raise MidiforgeError(
            f"bpe_vocab: {vocab_size} is not above the base vocabulary of {base} tokens; give a "
            f"larger size, e.g. {base * 2}"
        )
    tokenizer.train(vocab_size, iterator=_BarBytes(tokenizer, sequences, n_sequences))


def apply_bpe(tokenizer: MusicTokenizer, base_ids: np.ndarray) -> np.ndarray:
    """BPE-merge one base-vocabulary id sequence with a trained tokenizer → int32 ids."""
    seq = TokSequence(ids=[int(i) for i in base_ids])
    tokenizer.encode_token_ids(seq)
    return np.asarray(seq.ids, np.int32)


def notes_from_score(score: Score) -> np.ndarray:
    """All notes of ``score`` as a float32 array ``[n_notes, len(NOTE_FIELDS)]``, time in beats.

    Rows are sorted by (onset, pitch, program); drums get program -1.
    """
    tpq = float(score.ticks_per_quarter)
    parts = []
    for track in score.tracks:
        arr = track.notes.numpy()
        n = len(arr["pitch"])
        if n == 0:
            continue
        part = np.empty((n, len(NOTE_FIELDS)), np.float64)
        part[:, FIELD["pitch"]] = arr["pitch"]
        part[:, FIELD["onset"]] = arr["time"] / tpq
        part[:, FIELD["duration"]] = arr["duration"] / tpq
        part[:, FIELD["velocity"]] = arr["velocity"]
        part[:, FIELD["program"]] = DRUM_PROGRAM if track.is_drum else track.program
        parts.append(part)
    if not parts:
        return np.zeros((0, len(NOTE_FIELDS)), np.float32)
    notes = np.concatenate(parts)
    order = np.lexsort(
        (notes[:, FIELD["program"]], notes[:, FIELD["pitch"]], notes[:, FIELD["onset"]])
    )
    notes = notes[order]
    notes[:, FIELD["frequency"]] = frequency_hz(notes[:, FIELD["pitch"]])
    notes[:, FIELD["delta"]] = np.diff(notes[:, FIELD["onset"]], prepend=notes[0, FIELD["onset"]])
    return notes.astype(np.float32)


def score_from_notes(
    notes: np.ndarray,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    *,
    tpq: int = DEFAULT_TPQ,
    time_signature: tuple[int, int] = (4, 4),
) -> Score:
    """Build a Score from a ``[n, len(NOTE_FIELDS)]`` note array (the inverse of
    :func:`notes_from_score`): one track per program, times rounded to ``tpq`` ticks per beat.
    Each track carries its GM program and is named after it (:func:`midiforge.instruments.
    instrument_name`); program -1 is a drum track (``is_drum``, written on MIDI channel 10).

    ``frequency`` and ``delta`` are ignored (they are derived columns); durations shorter than
    one tick become one tick so no note vanishes.
    """
    notes = np.asarray(notes, np.float64)
    if notes.ndim != 2 or notes.shape[1] != len(NOTE_FIELDS):
        raise MidiforgeError(
            f"notes: expected shape [n, {len(NOTE_FIELDS)}] with fields {NOTE_FIELDS}, "
            f"got {notes.shape}"
        )
    score = Score(tpq)
    score.tempos.append(Tempo(0, float(tempo_bpm)))
    score.time_signatures.append(TimeSignature(0, *time_signature))
    programs = notes[:, FIELD["program"]].round().astype(int)
    for program in sorted(set(programs.tolist())):
        rows = notes[programs == program]
        is_drum = program == DRUM_PROGRAM
        track = Track(
            name=instrument_name(program), program=0 if is_drum else program, is_drum=is_drum
        )
        onsets = np.round(rows[:, FIELD["onset"]] * tpq).astype(int)
        durations = np.maximum(1, np.round(rows[:, FIELD["duration"]] * tpq)).astype(int)
        pitches = np.clip(np.round(rows[:, FIELD["pitch"]]), 0, 127).astype(int)
        velocities = np.clip(np.round(rows[:, FIELD["velocity"]]), 1, 127).astype(int)
        for t, d, p, v in zip(
            onsets.tolist(), durations.tolist(), pitches.tolist(), velocities.tolist()
        ):
            track.notes.append(Note(t, d, p, v))
        score.tracks.append(track)
    return score
