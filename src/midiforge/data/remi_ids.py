"""MidiTok's REMI token ids for a score, built with numpy instead of one Python object per token.

Why: ``prepare`` spends nearly all of its per-file time in MidiTok's encoder, which builds an
``Event`` per token, sorts them, inserts Bar/Position events one at a time and turns each into
a string and then an id. That cost is per token, so the default stream (a Program token before
every note: 4.3 tokens per note on band music) paid 1.3x the merged piano stream's per note.
Here the same stream is computed from the preprocessed score's note arrays: the Pitch /
Velocity / Duration (/ Program) ids of all notes at once, and the Bar / TimeSig / Position ids
per onset, looping in Python only over time-signature changes.

What stays MidiTok's: the preprocessing (``tokenizer.preprocess_score``: resampling, velocity
and duration quantization, pitch range, track merging), the vocabulary and the duration table.
What is ours is the event layout of :meth:`miditok.REMI._add_time_events` and
``MusicTokenizer._create_track_events``, for the configurations :func:`remi_ids` accepts
(those ``prepare`` builds: REMI with time signatures, velocities and durations, with or
without Program tokens before every note); tests compare its ids with ``tokenizer.encode`` on
real multi-track files. Anything else (another tokenization, BPE, tempos, chords, rests,
attribute controls, an id the vocabulary lacks) returns None, and the caller uses MidiTok.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from miditok import REMI, MusicTokenizer
from miditok.constants import TIME_SIGNATURE
from miditok.utils import get_score_ticks_per_beat
from symusic import Score

MISSING = -1  # a lookup-table slot with no token in the vocabulary
ALL_PROGRAMS = frozenset(range(-1, 128))  # GM programs and -1 for drums
OFF_FLAGS = (  # config switches that add tokens this module does not write
    "use_chords",
    "use_rests",
    "use_tempos",
    "use_key_signatures",
    "use_sustain_pedals",
    "use_pitch_bends",
    "use_control_changes",
    "use_pitch_intervals",
    "program_changes",
)


@dataclass(frozen=True)
class _Tables:
    """Vocabulary ids as arrays indexed by value (``MISSING`` where there is no token)."""

    pitch: np.ndarray  # [128] Pitch_p
    drum: np.ndarray  # [128] PitchDrum_p
    velocity: np.ndarray  # [128] Velocity_v
    program: np.ndarray  # [129] Program_p at p + 1 (drums at 0)
    position: np.ndarray  # [n] Position_i
    duration: dict[int, np.ndarray]  # ticks per beat -> [ticks] Duration_a.b.c
    bar: int


_CACHE: dict[int, tuple[MusicTokenizer, _Tables | None]] = {}


def _table(vocab: dict[str, int], keys: list[str]) -> np.ndarray:
    return np.array([vocab.get(k, MISSING) for k in keys], np.int64)


def _supported(tokenizer: MusicTokenizer) -> bool:
    """True for the REMI configurations whose streams :func:`remi_ids` writes exactly."""
    cfg = tokenizer.config
    extra = cfg.additional_params
    return (
        type(tokenizer) is REMI
        and not tokenizer.is_trained
        and not tokenizer._note_on_off
        and cfg.use_time_signatures
        and cfg.use_velocities
        and cfg.use_programs == cfg.one_token_stream_for_programs
        and set(cfg.use_note_duration_programs) >= ALL_PROGRAMS
        and not any(getattr(cfg, flag) for flag in OFF_FLAGS)
        and not tokenizer.attribute_controls
        and not extra.get("use_bar_end_tokens")
        and not extra.get("add_trailing_bars")
        and extra.get("max_bar_embedding") is None
    )


def _tables(tokenizer: MusicTokenizer) -> _Tables | None:
    """The tokenizer's lookup tables, built once per tokenizer (None: not supported)."""
    hit = _CACHE.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    tables = None
    if _supported(tokenizer):
        vocab = tokenizer.vocab
        n_pos = sum(k.startswith("Position_") for k in vocab)
        durations = {}
        for tpb, by_ticks in tokenizer._tpb_ticks_to_tokens.items():
            table = np.full(max(by_ticks) + 1, MISSING, np.int64)
            for ticks, value in by_ticks.items():
                table[ticks] = vocab.get(f"Duration_{value}", MISSING)
            durations[int(tpb)] = table
        tables = _Tables(
            pitch=_table(vocab, [f"Pitch_{p}" for p in range(128)]),
            drum=_table(vocab, [f"PitchDrum_{p}" for p in range(128)]),
            velocity=_table(vocab, [f"Velocity_{v}" for v in range(128)]),
            program=_table(vocab, [f"Program_{p}" for p in range(-1, 128)]),
            position=_table(vocab, [f"Position_{i}" for i in range(n_pos)]),
            duration=durations,
            bar=vocab["Bar_None"],
        )
    _CACHE[id(tokenizer)] = (tokenizer, tables)
    return tables


def _lookup(table: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """``table[values]``, or None when a value has no token (MidiTok would raise there)."""
    if len(values) and (values.min() < 0 or values.max() >= len(table)):
        return None
    ids = table[values]
    return None if (ids == MISSING).any() else ids


def _duration_ids(
    tables: _Tables, score: Score, time: np.ndarray, duration: np.ndarray
) -> np.ndarray | None:
    """Duration ids, each note's ticks looked up in the table of its ticks-per-beat section
    (``MusicTokenizer._create_duration_event``)."""
    if len(score.time_signatures) > 0:
        sections = get_score_ticks_per_beat(score)
    else:
        sections = np.array([[score.end(), score.ticks_per_quarter]])
    section = np.searchsorted(sections[:, 0], time, side="right")
    if len(section) and section.max() >= len(sections):
        return None
    ids = np.empty(len(time), np.int64)
    for s, tpb in enumerate(sections[:, 1].tolist()):
        rows = section == s
        table = tables.duration.get(int(tpb))
        if rows.any():
            found = None if table is None else _lookup(table, duration[rows])
            if found is None:
                return None
            ids[rows] = found
    return ids


def _note_ids(tokenizer: MusicTokenizer, tables: _Tables, score: Score):
    """Onset times and the ``[notes, k]`` id rows of every note, in MidiTok's event order:
    tracks concatenated, then a stable sort by onset (``_sort_events``)."""
    arrays = [t.notes.numpy() for t in score.tracks]
    time = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    pitch = np.concatenate([a["pitch"] for a in arrays]).astype(np.int64)
    drums = np.repeat([t.is_drum for t in score.tracks], [len(a["time"]) for a in arrays])
    columns = []
    if tokenizer.config.use_programs:
        programs = [-1 if t.is_drum else t.program for t in score.tracks]
        per_note = np.repeat(np.array(programs, np.int64), [len(a["time"]) for a in arrays])
        columns.append(_lookup(tables.program, per_note + 1))
    if pitch.min() < 0 or pitch.max() > 127:
        return None
    drum_pitch = drums if tokenizer.config.use_pitchdrum_tokens else np.zeros_like(drums)
    columns.append(np.where(drum_pitch, tables.drum[pitch], tables.pitch[pitch]))
    if (columns[-1] == MISSING).any():
        return None
    velocity = np.concatenate([a["velocity"] for a in arrays]).astype(np.int64)
    columns.append(_lookup(tables.velocity, velocity))
    duration = np.concatenate([a["duration"] for a in arrays]).astype(np.int64)
    columns.append(_duration_ids(tables, score, time, duration))
    if any(c is None for c in columns):
        return None
    order = np.argsort(time, kind="stable")
    return time[order], np.stack(columns, axis=1)[order]


@dataclass
class _Clock:
    """The bar/time-signature state that ``REMI._add_time_events`` carries along the stream."""

    ticks_per_quarter: int
    signature: tuple[int, int]
    bar: int = -1  # current_bar
    bar_at_change: int = 0  # bar_at_last_ts_change
    tick_at_change: int = 0  # tick_at_last_ts_change
    tick_at_bar: int = 0  # tick_at_current_bar
    previous_tick: int = -1
    ticks_per_bar: int = 0
    ticks_per_pos: int = 0

    def set_signature(self, tokenizer: MusicTokenizer, tick: int, signature: tuple[int, int]):
        self.signature = signature
        per_bar, _, per_pos = tokenizer._compute_ticks_per_units(
            tick, signature, self.ticks_per_quarter
        )
        self.ticks_per_bar, self.ticks_per_pos = per_bar, per_pos


def _signature_event(
    tokenizer: MusicTokenizer, tables: _Tables, clock: _Clock, tick: int, sig: tuple[int, int]
) -> list[int]:
    """Ids for one TimeSig event at ``tick``: the Bar (+ TimeSig) ids up to it, then its own."""
    vocab, out = tokenizer.vocab, []
    if tick != clock.previous_tick:
        new_bars = (
            clock.bar_at_change + (tick - clock.tick_at_change) // clock.ticks_per_bar - clock.bar
        )
        for i in range(new_bars):
            clock.bar += 1
            clock.tick_at_bar = (
                clock.tick_at_change + (clock.bar - clock.bar_at_change) * clock.ticks_per_bar
            )
            out.append(tables.bar)
            if i + 1 < new_bars:  # the last new bar's TimeSig is this event's own
                out.append(vocab["TimeSig_{}/{}".format(*clock.signature)])
        clock.previous_tick = tick
    clock.bar_at_change += (tick - clock.tick_at_change) // clock.ticks_per_bar
    clock.tick_at_change = tick
    clock.set_signature(tokenizer, tick, sig)
    clock.previous_tick -= 1  # the next event gets a Position even at the same tick
    out.append(vocab["TimeSig_{}/{}".format(*sig)])
    return out


def _onset_ids(
    tokenizer: MusicTokenizer,
    tables: _Tables,
    clock: _Clock,
    onsets: np.ndarray,
    counts: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray | None:
    """Ids for the notes of successive distinct ``onsets`` under one time signature: before
    each onset its new Bar + TimeSig pairs and a Position, then its ``counts`` note rows."""
    bars = clock.bar_at_change + (onsets - clock.tick_at_change) // clock.ticks_per_bar
    after = np.maximum(clock.bar, np.maximum.accumulate(bars))
    new_bars = after - np.concatenate([[clock.bar], after[:-1]])
    bar_tick = clock.tick_at_change + (after - clock.bar_at_change) * clock.ticks_per_bar
    bar_tick = np.where(after > clock.bar, bar_tick, clock.tick_at_bar)
    position = _lookup(tables.position, (onsets - bar_tick) // clock.ticks_per_pos)
    if position is None:
        return None
    sig = tokenizer.vocab["TimeSig_{}/{}".format(*clock.signature)] if new_bars.any() else 0
    head = 2 * new_bars + 1
    k = rows.shape[1]
    block = head + k * counts
    start = np.cumsum(block) - block
    out = np.empty(int(block.sum()), np.int64)
    local = np.arange(int(head.sum())) - np.repeat(np.cumsum(head) - head, head)
    is_pos = local == np.repeat(head - 1, head)
    out[np.repeat(start, head) + local] = np.where(
        is_pos, np.repeat(position, head), np.where(local % 2 == 0, tables.bar, sig)
    )
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    first = np.repeat(start + head, counts) + rank * k
    out[first[:, None] + np.arange(k)] = rows
    clock.bar, clock.tick_at_bar = int(after[-1]), int(bar_tick[-1])
    clock.previous_tick = int(onsets[-1])
    return out


def covers(tokenizer: MusicTokenizer) -> bool:
    """True when :func:`remi_ids` can encode for this tokenizer (the REMI configurations
    ``prepare`` builds, untrained); otherwise use ``tokenizer.encode``."""
    return _tables(tokenizer) is not None


def remi_ids(tokenizer: MusicTokenizer, score: Score) -> np.ndarray | None:
    """The ids ``tokenizer.encode(score, no_preprocess_score=True)`` gives (int64), for a score
    already through ``tokenizer.preprocess_score``; None when the tokenizer is not covered
    (:func:`covers`), the stream is not one sequence of notes, or MidiTok would raise: then
    ask MidiTok, which gives the same answer as without this module."""
    tables = _tables(tokenizer)
    if tables is None:
        return None
    if len(score.tracks) != 1 and not tokenizer.config.one_token_stream_for_programs:
        return None  # several per-track streams, or none: MidiTok's list of sequences
    if score.note_num() == 0:
        return None
    found = _note_ids(tokenizer, tables, score)
    if found is None:
        return None
    time, rows = found
    onsets, first, counts = np.unique(time, return_index=True, return_counts=True)
    sig_times = np.array([ts.time for ts in score.time_signatures], np.int64)
    sig_order = np.argsort(sig_times, kind="stable")  # _sort_events is stable
    signatures = [score.time_signatures[int(i)] for i in sig_order]
    first_sig = (signatures[0].numerator, signatures[0].denominator) if signatures else None
    clock = _Clock(score.ticks_per_quarter, first_sig or TIME_SIGNATURE)
    clock.set_signature(tokenizer, signatures[0].time if signatures else 0, clock.signature)
    pieces, done = [], 0
    try:
        for ts in [*signatures, None]:
            until = len(onsets) if ts is None else np.searchsorted(onsets, ts.time, "left")
            if until > done:  # notes at a change's tick come after its TimeSig event
                notes = slice(first[done], first[until - 1] + counts[until - 1])
                part = _onset_ids(
                    tokenizer, tables, clock, onsets[done:until], counts[done:until], rows[notes]
                )
                if part is None:
                    return None
                pieces.append(part)
                done = until
            if ts is not None:
                sig = (ts.numerator, ts.denominator)
                pieces.append(np.array(_signature_event(tokenizer, tables, clock, ts.time, sig)))
    except KeyError:  # a TimeSig token the vocabulary lacks: MidiTok raises the same
        return None
    return np.concatenate(pieces)
