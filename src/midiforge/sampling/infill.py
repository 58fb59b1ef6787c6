"""Infilling: regenerate bars A..B of a song and keep every other note of it exactly.

``generate --infill song.mid --bars 5-8`` reads the song (the primer's reader,
:func:`midiforge.io.midi.load_midi`), finds its bar lines from its time signatures
(symusic's ``get_downbeats``) and splits its notes by onset: a note is *in the range* when it
starts in bars A..B (from the bar line of A up to, not including, the bar line of B + 1).

* **Token models and the multi-head LSTM** continue the prefix: the notes that start before
  bar A are the primer, encoded as ``--primer`` encodes one, and the family's own length rule
  (:mod:`midiforge.sampling.token_rules`, :mod:`midiforge.sampling.note_rules`) runs the piece
  to the bar line after bar B. A token run prepared with ``--fim`` and trained with
  ``train.fim`` (the shipped transformer) also reads the bars after the range first, in
  suffix-prefix-middle order (:mod:`midiforge.data.fim`): the first tokens of bar B + 1 on are
  a prelude before the prefix that the rules never see. A run without the markers, and the
  multi-head LSTM, read only the prefix, so their seam at bar B + 1 is as smooth as the
  prefix makes it.
* **Diffusion** inpaints (as it does to continue a piece, :mod:`midiforge.sampling.diffusion`):
  one window holds the last notes before the range and the first notes after it as known, and
  the gap's slots between them, as many as the song had in the range (at least one, at most
  what fits the window), are denoised in agreement with both sides. Its notes' onsets, which
  diffusion writes as gaps between notes, are then mapped onto the range's time span (the
  first note on bar A, the spacing stretched or squeezed so that the last note lies one
  average step before the range's end) and snapped to the model's time grid.

Every generated note is then cut to the range: one starting outside it is dropped, one ending
after its end is shortened to end there (so no kept note is overlapped from the range).

**Instruments.** Where the family chooses instruments (Program tokens, an instrument head,
instrument channels) it is held, through the existing instrument rules, to the programs the
song plays in the range (each mapped onto the run's nearest program of the same GM family);
a ``--instruments`` request wins. A generated note on a program the song does not play, or on
the one program of a single-instrument run, is written on the range's most common instrument.

**The file.** The song as read, with the notes in the range replaced: every other note keeps its
track, tick onset, duration, pitch and velocity (tempos, time signatures and controls are
kept too); the generated notes join the song's first track of their instrument, or a new one.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from symusic import Note, Score, Track

from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, family_of
from midiforge.sampling.options import GenerateOptions
from midiforge.schema import FIELD

log = logging.getLogger(__name__)

BAR_BEATS = 4.0  # the bar the note families and a tokenizer without TimeSig tokens assume
SEAM_BEATS = 0.25  # a "generated" note this close after bar A that repeats a primer note is
# the primer note itself, moved onto the bar line by the tokenizer's time grid
GRID_BEATS = 1 / 12  # diffusion's decoded onsets snap to this grid (16ths and triplets)


@dataclass
class Gap:
    """A song split at its bar lines around the range to regenerate."""

    path: Path
    song: Score  # as read; its ticks are the file's own
    first: int  # bar A, 1-based
    last: int  # bar B, inclusive
    start: int  # tick of bar A's line
    end: int  # tick of the line after bar B
    kept: Score  # the song without the notes that start in the range
    primer: Score | None  # the song cut before bar A (None: the range opens the song)
    suffix: Score | None  # the song from the line after bar B, moved to time 0 (None: no notes)
    programs: list[int]  # the range's instruments (-1 drums), most notes first
    inside: int  # notes of the song in the range

    @property
    def start_beats(self) -> float:
        return self.start / self.song.ticks_per_quarter

    @property
    def end_beats(self) -> float:
        return self.end / self.song.ticks_per_quarter


def bar_lines(score: Score) -> np.ndarray:
    """Ticks of every bar line of ``score``: one per bar, then the line closing the last."""
    downbeats = np.asarray(score.get_downbeats(), np.int64)
    if len(downbeats) == 0:
        downbeats = np.zeros(1, np.int64)
    last = int(downbeats[-1])
    signatures = [ts for ts in score.time_signatures if ts.time <= last]
    num, den = (signatures[-1].numerator, signatures[-1].denominator) if signatures else (4, 4)
    bar = max(round(score.ticks_per_quarter * 4 * num / den), 1)
    return np.append(downbeats, last + bar)


def _programs_of(score: Score, lo: int, hi: int) -> list[int]:
    """The instruments of the notes starting in ``lo <= tick < hi``, most notes first."""
    counts: Counter[int] = Counter()
    for track in score.tracks:
        times = track.notes.numpy()["time"]
        n = int(((times >= lo) & (times < hi)).sum())
        if n:
            counts[DRUMS if track.is_drum else int(track.program)] += n
    return [p for p, _ in counts.most_common()]


def split_song(path: str | Path, first: int, last: int) -> Gap:
    """The song at ``path`` split around bars ``first..last`` (1-based, inclusive)."""
    from midiforge.io.midi import load_midi

    song = load_midi(path)
    if song.note_num() == 0:
        raise MidiforgeError(f"infill: {path} holds no notes; give a MIDI file with notes")
    lines = bar_lines(song)
    bars = len(lines) - 1
    if last > bars:
        raise MidiforgeError(
            f"bars: {first}-{last} is past the end of {path}, which has {bars} bars; "
            f"use A-B within 1-{bars}"
        )
    start, end = int(lines[first - 1]), int(lines[last])
    kept = song.copy()
    inside = 0
    for track in kept.tracks:
        before = track.note_num()
        track.notes.filter(lambda n: not start <= n.time < end, inplace=True)
        inside += before - track.note_num()
    primer = song.clip(0, start, clip_end=False) if start > 0 else None
    if primer is not None and primer.note_num() == 0:
        primer = None
    programs = _programs_of(song, start, end) or _programs_of(song, 0, int(lines[-1]))
    suffix = song.clip(end, max(song.end(), end + 1), clip_end=False).shift_time(-end)
    suffix = suffix if suffix.note_num() else None
    return Gap(Path(path), song, first, last, start, end, kept, primer, suffix, programs, inside)


# --------------------------------------------------------------------------- instruments


def chooses_instruments(run: Any) -> bool:
    """The family writes more than one instrument (so it can be held to the song's)."""
    model = run.model
    if model.sampler == "tokens":
        from midiforge.sampling.instrument_rule import tokenizer_programs

        return bool(tokenizer_programs(run.tokenizer))
    if model.sampler == "diffusion":
        return bool(model.scaler.n_instruments)
    return len(getattr(model.config, "programs", [])) > 1


def run_programs(programs: list[int], known: list[int]) -> dict[int, int]:
    """Each song program the run can play (itself, or the run's first of its GM family) →
    the song program it stands for, in the song's order."""
    out: dict[int, int] = {}
    for program in programs:
        if program in known:
            out.setdefault(program, program)
            continue
        same = [p for p in sorted(known) if family_of(p) == family_of(program)]
        if same:
            out.setdefault(same[0], program)
    return out


# --------------------------------------------------------------------------- the families


def _in_range(rows: np.ndarray, gap: Gap, primer: np.ndarray | None) -> np.ndarray:
    """The rows that start in the range, shortened to end by its end; a row repeating a primer
    note just before bar A (moved onto it by a time grid) is not new and is left out."""
    onset = rows[:, FIELD["onset"]]
    keep = (onset >= gap.start_beats) & (onset < gap.end_beats)
    if primer is not None and len(primer):
        late = primer[primer[:, FIELD["onset"]] > gap.start_beats - SEAM_BEATS]
        for note in late:
            keep &= ~(
                (rows[:, FIELD["pitch"]] == note[FIELD["pitch"]])
                & (rows[:, FIELD["program"]] == note[FIELD["program"]])
                & (onset < gap.start_beats + SEAM_BEATS)
            )
    out = rows[keep].copy()
    ends = out[:, FIELD["onset"]] + out[:, FIELD["duration"]]
    out[:, FIELD["duration"]] -= np.maximum(ends - gap.end_beats, 0.0)
    return out


def _length_bars(run: Any, gap: Gap) -> int:
    """The ``bars`` to ask of the sampler so that its piece ends on the range's closing line.

    Token models: bar B for a tokenizer that carries the song's time signature from the
    primer, else the 4/4 bars covering the range (the length rule ends the piece there, its
    last bar's wish for a new bar becoming EOS). Note models: the 4/4 bars that cover the range
    and every primer note (their rules refuse a primer that sounds past the end).
    """
    tok = run.tokenizer
    if run.model.sampler == "tokens":
        if gap.primer is not None and tok.config.use_time_signatures:
            return gap.last
        return max(math.ceil(gap.end_beats / BAR_BEATS - 1e-9), 1)
    beats = gap.end_beats
    if gap.primer is not None:
        beats = max(beats, gap.primer.end() / gap.song.ticks_per_quarter)
    return max(math.ceil(beats / BAR_BEATS - 1e-9), 1)


def _autoregressive(run, opts, sampler, label, gap: Gap, asked: str | None):
    """Token and note models: the primer continued to the range's end by the sampler itself."""
    from midiforge.data.encode import notes_from_score

    bars = _length_bars(run, gap)
    sub = replace(opts, infill=None, bars=bars, instruments=asked)
    if reads_suffix(run) and gap.suffix is not None:
        log.info("infill: the run reads the bars after the range first (fill-in-the-middle)")
        scores, generated, errors = sampler(run, sub, gap.primer, label, suffix=gap.suffix)
    else:
        scores, generated, errors = sampler(run, sub, gap.primer, label)
    primer = None if gap.primer is None else notes_from_score(gap.primer)
    rows = [_in_range(notes_from_score(s), gap, primer) for s in scores]
    if run.model.sampler != "tokens":
        generated = [len(r) for r in rows]
    return rows, generated, errors


def reads_suffix(run: Any) -> bool:
    """Whether ``run`` is a token model whose tokenizer has the fill-in-the-middle markers
    (``prepare --fim``; trained with ``train.fim`` it reads the bars after a range)."""
    from midiforge.data.fim import marker_ids

    tok = getattr(run, "tokenizer", None)
    return run.model.sampler == "tokens" and tok is not None and marker_ids(tok.vocab) is not None


def _place(rows: np.ndarray, gap: Gap) -> np.ndarray:
    """Diffusion's gap notes with their onsets mapped onto the range (module docstring)."""
    rows = rows[np.argsort(rows[:, FIELD["onset"]], kind="stable")].copy()
    rel = rows[:, FIELD["onset"]] - rows[0, FIELD["onset"]]
    span = gap.end_beats - gap.start_beats
    scale = 1.0
    if rel[-1] > 0:
        scale = span / (rel[-1] + rel[-1] / max(len(rel) - 1, 1))
    snap = np.rint(rel * scale / GRID_BEATS) * GRID_BEATS
    rows[:, FIELD["onset"]] = gap.start_beats + np.minimum(snap, span - GRID_BEATS)
    dur = np.maximum(np.rint(rows[:, FIELD["duration"]] * scale / GRID_BEATS), 1) * GRID_BEATS
    rows[:, FIELD["duration"]] = dur
    return rows


def _windows(run: Any, opts: GenerateOptions, label: int | None, asked: list[int] | None,
             song: np.ndarray):  # fmt: skip
    """The diffusion sampler's settings for these options, and the rules (key, range, ...);
    ``song``: the file's note rows, whose scale a key-conditioned model is told."""
    from midiforge.sampling import diffusion as d
    from midiforge.sampling.diffusion_instruments import instrument_channels
    from midiforge.sampling.musical import Musical
    from midiforge.sampling.note_rules import DiffusionRules

    model = run.model
    musical = Musical.from_options(replace(opts, infill=None, bars=None))
    index = d.resolve_label(model, label)
    rhythm = model.rhythm(index)
    rules = DiffusionRules(musical, model.scaler, rhythm=rhythm) if musical.active else None
    generator = d.seeded_generator(opts.seed)
    keys = d.piece_keys(model, opts.n, generator, musical, song)
    windows = d.DenoisingWindows(
        model, d.scheduler_for(model, opts.steps, opts.eta), index,
        opts.guidance, opts.eta, generator, instrument_channels(model, asked),
        None, opts.resample, None if rules is None else rules.project, keys=keys,
        key_guidance=opts.key_guidance,
        parts=model.parts(index) if opts.style_parts else d.NO_PARTS,
    )  # fmt: skip
    return windows, rules


def _inpaint(windows: Any, pieces: list[np.ndarray], after: np.ndarray, slots: int, c1: int):
    """One window per piece: its last ``c1`` notes, ``slots`` new ones, then ``after``."""
    import torch

    from midiforge.sampling import diffusion as d

    model, length = windows.model, windows.model.config.length
    known = torch.zeros(len(pieces), model.n_features, length)
    where = torch.zeros(length, dtype=torch.bool)
    if c1:
        tails = np.stack([p[len(p) - c1 :] for p in pieces])
        known[:, :, :c1] = model.encode(torch.from_numpy(tails))
        where[:c1] = True
    if len(after):
        lo = c1 + slots
        known[:, :, lo : lo + len(after)] = model.encode(torch.from_numpy(after)[None])
        where[lo : lo + len(after)] = True
    off = windows.off()
    known[:, off[:, None] & ~where[None, :]] = d.OFF
    mask = where[None, :] | off[:, None]  # (F, L): known notes, and instruments held off
    return d.sample_window(
        model, windows.scheduler, batch=len(pieces), label=windows.label,
        guidance=windows.guidance, eta=windows.eta, known=known, known_mask=mask,
        generator=windows.generator, resample=windows.resample, project=windows.project,
        key=windows.keys, key_guidance=windows.key_guidance,
    )  # fmt: skip


def _diffusion(run, opts: GenerateOptions, label, gap: Gap, asked: list[int] | None):
    """Diffusion: the range's notes inpainted between the notes before and after it, in as
    many windows as they take (each keeps ``context`` notes before it; the last one also
    holds the first notes after the range)."""
    from midiforge.sampling.generate import primer_rows
    from midiforge.style_parts import play_parts

    model, length = run.model, run.model.config.length
    rows = primer_rows(run, gap.song)
    windows, rules = _windows(run, opts, label, asked, rows)
    onset = rows[:, FIELD["onset"]]
    before, after = rows[onset < gap.start_beats], rows[onset >= gap.end_beats]
    context = min(length // 2 if opts.context is None else opts.context, length - 1)
    pieces = [before.copy() for _ in range(opts.n)]
    new: list[list[np.ndarray]] = [[] for _ in range(opts.n)]
    left = max(gap.inside, 1)
    model.eval()
    while left > 0:
        c1 = min(len(pieces[0]), context)
        c2 = min(len(after), (length - c1) // 2)
        last = left <= length - c1 - c2
        slots = left if last else min(left - 1 if c2 else left, length - c1)
        x = _inpaint(windows, pieces, after[:c2] if last else after[:0], slots, c1)
        for i, piece in enumerate(pieces):
            start = float(piece[-1, FIELD["onset"]]) if len(piece) else None
            made = windows.decode(x[i, :, : c1 + slots], c1, start)
            pieces[i] = np.concatenate([piece, made])
            new[i].append(made)
        left -= slots
    out = []
    for parts in new:
        placed = play_parts(_place(np.concatenate(parts), gap), windows.parts)
        out.append(_in_range(placed if rules is None else rules.finish(placed), gap, None))
    return out, [len(r) for r in out], []


# --------------------------------------------------------------------------- the file


Tracks = dict[tuple[int, bool], Any]  # (program, is drum) -> the score's track for it


def place_rows(score: Score, rows: np.ndarray, start: int, end: int,
               program_for: Callable[[int], int], tracks: Tracks) -> None:  # fmt: skip
    """Append ``rows`` (beats, at ``score``'s ticks per quarter) to ``score``'s tracks.

    A row starting outside ``start <= tick < end`` is skipped, one ending after ``end`` is
    cut to end there; each goes on ``program_for(program)``'s track in ``tracks`` (keyed by
    program and drum flag), a new track made and appended to ``score`` when there is none.
    The tracks written to are sorted. Infilling and harmonizing both write their notes so.
    """
    tpq = score.ticks_per_quarter
    touched = []
    for row in rows:
        time = round(float(row[FIELD["onset"]]) * tpq)
        if not start <= time < end:
            continue
        duration = max(min(round(float(row[FIELD["duration"]]) * tpq), end - time), 1)
        velocity = int(np.clip(round(float(row[FIELD["velocity"]])), 1, 127))
        program = program_for(round(float(row[FIELD["program"]])))
        drum = program == DRUMS
        key = (0 if drum else program, drum)
        if key not in tracks:
            tracks[key] = Track(program=key[0], is_drum=drum)
            score.tracks.append(tracks[key])
        tracks[key].notes.append(Note(time, duration, int(row[FIELD["pitch"]]), velocity))
        touched.append(tracks[key])
    for track in {id(t): t for t in touched}.values():
        track.notes.sort()


def merge(gap: Gap, rows: np.ndarray, back: dict[int, int]) -> Score:
    """The song with the range's notes replaced by ``rows`` (beats), on the song's ticks.

    ``back`` maps a program the model wrote to the song's program it stands for; a program
    neither the song plays in the range nor ``back`` knows goes to the range's first one.
    """
    score = gap.kept.copy()
    tracks: Tracks = {}
    for track in score.tracks:
        tracks.setdefault((int(track.program), bool(track.is_drum)), track)

    def program_for(program: int) -> int:
        return program if program in gap.programs else back.get(program, gap.programs[0])

    place_rows(score, rows, gap.start, gap.end, program_for, tracks)
    return score


def infilling(sampler: Any) -> Any:
    """``sampler`` (one of ``generate.SAMPLERS``) wrapped for ``--infill``: the same call,
    each score it returns the song with bars A..B regenerated."""

    def run_infill(run: Any, opts: GenerateOptions, primer: Any, label: int | None):
        return infill(run, opts, sampler, label)  # primer is None: options refuse both

    return run_infill


def infill(run: Any, opts: GenerateOptions, sampler: Any, label: int | None):
    """``(scores, generated, grammar errors)`` as the samplers return them, each score the
    song with bars A..B regenerated (see the module docstring); ``generated`` counts tokens
    for a token model, notes written in the range otherwise."""
    first, last = opts.bar_range() or (0, 0)
    gap = split_song(opts.infill, first, last)
    back = run_programs(gap.programs, run.instruments) if chooses_instruments(run) else {}
    if run.model.sampler == "diffusion":
        asked = None if opts.instruments is not None or not back else list(back)
        if opts.instruments is not None:
            from midiforge.instruments import resolve_instruments

            asked = resolve_instruments(opts.instruments, run.instruments)
        rows, generated, errors = _diffusion(run, opts, label, gap, asked)
    else:
        words = opts.instruments or (",".join(str(p) for p in back) if back else None)
        rows, generated, errors = _autoregressive(run, opts, sampler, label, gap, words)
    log.info(
        "infill: bars %d-%d of %s: %d notes kept, %s new", first, last, gap.path,
        gap.kept.note_num(), ", ".join(str(len(r)) for r in rows),
    )  # fmt: skip
    return [merge(gap, r, back) for r in rows], generated, errors
