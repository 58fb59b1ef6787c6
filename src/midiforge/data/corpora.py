"""The shared corpora as data: one short entry per corpus, its quirks fixed in one place.

``build_corpus`` lays out a folder of MIDI files with one sub-folder per style label (``pop/``,
``folk/``, ``chorale/``) so that ``prepare --labels-from folder`` labels them, plus a split file
for corpora that come with a published split (the JSB chorales), so that benchmark test pieces
never land in a training split.

Quirks, in one place:

* POP909 keeps one MIDI per song folder (``pop909/NNN/NNN.mid``); the other files there (beat,
  chord and key annotations) are not music. Its three parts (MELODY, BRIDGE, PIANO) are all
  program 0 in the source.
  Its MIDI files declare 1/4 or 2/4 throughout, and their beats lie on a 480-tick grid offset
  from tick 0 by 0 to 450 ticks, while ``beat_midi.txt`` marks every beat and downbeat (4 beats
  a bar in 880 songs, 6 in 29). Each copy is shifted so that its first annotated downbeat falls
  on a bar line, with the annotated meter (:func:`pop909_on_its_bars`): bars, beats and the
  tokenizer's grid then agree, and ``--bars 8`` is eight real bars. The chord annotation is
  copied beside it (``NNN.chord_midi.txt``), its times moved by the same amount.
* Nottingham is already one MIDI per tune: track 0 the melody, track 1 the chords (13 of the
  1034 tunes have the melody only). Both tracks are program 0 and unnamed in the source.
* The JSB chorales ship as piano-roll-like JSON, not MIDI. ``Jsb16thSeparated.json`` has exactly
  four voices (S, A, T, B) per 16th-note step with ``-1`` for silence. That format does not tell
  a held note from a repeated one, so a voice's run of equal pitches becomes one held note (the
  usual reading; it merges the occasional re-struck note).

Instruments: every part gets its own GM program from :data:`PART_PROGRAMS`, so a model trained
on these licensed corpora learns lead, accompaniment and ensemble instruments. The files are
written as converted copies (not links): a copy with the programs set is an ordinary MIDI
folder that ``prepare`` reads like any other, with no remapping hidden in a later stage.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from midiforge.bars import seconds_to_ticks
from midiforge.errors import MidiforgeError

TICKS_PER_QUARTER = 480
JSB_STEP_BEATS = 0.25  # one step of Jsb16thSeparated is a 16th note
JSB_TEMPO_BPM = 90.0  # chorales are notated without tempo; a calm hymn tempo
JSB_VELOCITY = 80
JSB_REST = -1
JSB_VOICES = ("soprano", "alto", "tenor", "bass")


@dataclass(frozen=True)
class Corpus:
    """Where a corpus lives under the shared datasets folder and which label it gets."""

    name: str
    label: str
    folder: str  # relative to the datasets root
    pattern: str  # glob of its MIDI files inside ``folder``; empty for converted corpora


# The GM program of each part, per corpus: POP909 parts by track name, Nottingham parts by
# track index, the chorales by voice. A part not listed keeps the program it has.
PART_PROGRAMS: dict[str, dict[str | int, int]] = {
    "pop909": {"MELODY": 73, "BRIDGE": 48, "PIANO": 0},  # Flute, String Ensemble 1, Piano
    "nottingham": {0: 40, 1: 24},  # melody: Violin; chords: Acoustic Guitar (nylon)
    "jsb": {"soprano": 40, "alto": 41, "tenor": 42, "bass": 43},  # Violin, Viola, Cello, Contrabass
}
PART_NAMES: dict[str, dict[int, str]] = {"nottingham": {0: "melody", 1: "chords"}}  # unnamed

CORPORA: dict[str, Corpus] = {
    "pop909": Corpus("pop909", "pop", "pop909", "*/[0-9][0-9][0-9].mid"),
    "nottingham": Corpus("nottingham", "folk", "nottingham", "*.mid"),
    "jsb": Corpus("jsb", "chorale", "jsb_chorales", ""),
}


def jsb_score(voices: list[list[int]]) -> symusic.Score:
    """One chorale (steps × 4 voices, MIDI pitch or -1) as a four-track Score.

    Each voice becomes a track with its :data:`PART_PROGRAMS` program; a run of equal pitches
    is one held note.
    """
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, JSB_TEMPO_BPM))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    step_ticks = int(TICKS_PER_QUARTER * JSB_STEP_BEATS)
    for v, name in enumerate(JSB_VOICES):
        track = symusic.Track(name, PART_PROGRAMS["jsb"][name], False)
        start, current = 0, JSB_REST
        for i, step in enumerate([*voices, [JSB_REST] * len(JSB_VOICES)]):  # sentinel closes runs
            pitch = int(step[v])
            if pitch == current:
                continue
            if current != JSB_REST:
                track.notes.append(
                    symusic.Note(
                        start * step_ticks, (i - start) * step_ticks, current, JSB_VELOCITY
                    )
                )
            start, current = i, pitch
        score.tracks.append(track)
    return score


def write_jsb_midi(datasets: Path, out_dir: Path) -> dict[str, str]:
    """Write every JSB chorale as ``{split}_{index:03d}.mid``; return file name → split."""
    source = datasets / "jsb_chorales" / "Jsb16thSeparated.json"
    if not source.is_file():
        raise MidiforgeError(f"JSB chorales not found at {source}; pass the shared datasets folder")
    data = json.loads(source.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    splits: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        for i, piece in enumerate(data[split]):
            name = f"{split}_{i:03d}.mid"
            jsb_score(piece).dump_midi(str(out_dir / name))
            splits[name] = split
    return splits


POP909_BEATS = "beat_midi.txt"  # per song folder: seconds, half-bar flag, downbeat flag per beat
POP909_CHORDS = "chord_midi.txt"  # per song folder: start and end seconds, Harte chord label
CHORDS_SUFFIX = ".chord_midi.txt"  # the copy's chord annotation: NNN.mid → NNN.chord_midi.txt


def _bar_lengths(downbeats: np.ndarray) -> list[tuple[int, int]]:
    """``(beat index, beats in the bar)`` where the bar length changes, from downbeat indices.

    A one-beat bar (an annotation's stutter, and a meter :func:`midiforge.data.corpus.clean_score`
    drops) is joined to the bar before it.
    """
    starts = [int(d) for d in downbeats]
    starts = [
        d for k, d in enumerate(starts) if k == 0 or k == len(starts) - 1 or starts[k + 1] - d > 1
    ]
    gaps = np.diff(starts)
    changes: list[tuple[int, int]] = []
    for start, gap in zip(starts, gaps.tolist()):
        if not changes or changes[-1][1] != gap:
            changes.append((start, gap))
    return changes or [(starts[0] if starts else 0, 4)]


def pop909_on_its_bars(score: symusic.Score, beats: np.ndarray) -> tuple[symusic.Score, float]:
    """``score`` moved so its first annotated downbeat is on a bar line, bars as annotated.

    ``beats`` is ``beat_midi.txt`` as an array (seconds, half-bar flag, downbeat flag). The
    new score has a time signature n/4 at each annotated bar whose length n differs from the
    bar before (most songs: one 4/4 at tick 0); the beats stay where they were relative to
    the notes. Returns it and the shift in seconds, for moving the song's other annotations.
    """
    tpq = score.ticks_per_quarter
    downbeats = np.flatnonzero(beats[:, 2] == 1)
    if len(downbeats) == 0:
        return score, 0.0
    ticks = seconds_to_ticks(score, beats[:, 0])
    changes = _bar_lengths(downbeats)
    shift = (-int(ticks[changes[0][0]])) % (changes[0][1] * tpq)
    moved = score.shift_time(shift)
    if len(moved.tempos):
        moved.tempos[0] = symusic.Tempo(0, moved.tempos[0].qpm)  # the tempo holds from tick 0
    moved.time_signatures = [
        symusic.TimeSignature(0 if k == 0 else int(ticks[beat]) + shift, per_bar, 4)
        for k, (beat, per_bar) in enumerate(changes)
    ]
    qpm = score.tempos[0].qpm if len(score.tempos) and score.tempos[0].time == 0 else 120.0
    return moved, shift / tpq * 60.0 / qpm


def copy_pop909_song(file: Path, copy: Path) -> None:
    """One POP909 song: parts' programs, bars from its beats, chords copied beside it."""
    score = with_part_programs(symusic.Score(str(file)), "pop909")
    beats_file, chords_file = file.parent / POP909_BEATS, file.parent / POP909_CHORDS
    shift = 0.0
    if beats_file.is_file():
        score, shift = pop909_on_its_bars(score, np.loadtxt(beats_file, ndmin=2))
    score.dump_midi(str(copy))
    if chords_file.is_file():
        rows = [line.split() for line in chords_file.read_text().splitlines() if line.strip()]
        copy.with_name(copy.stem + CHORDS_SUFFIX).write_text(
            "".join(f"{float(a) + shift:.6f}\t{float(b) + shift:.6f}\t{c}\n" for a, b, c in rows)
        )


def with_part_programs(score: symusic.Score, corpus: str) -> symusic.Score:
    """Give each part of a ``corpus`` score its :data:`PART_PROGRAMS` program, in place."""
    programs, names = PART_PROGRAMS.get(corpus, {}), PART_NAMES.get(corpus, {})
    for index, track in enumerate(score.tracks):
        key = track.name.strip().upper() if corpus == "pop909" else index
        if key in programs:
            track.program = programs[key]
        if not track.name.strip() and index in names:
            track.name = names[index]
    return score


def build_corpus(datasets: Path, out_dir: Path, names: tuple[str, ...] = tuple(CORPORA)) -> Path:
    """Lay out ``out_dir/{label}/…`` for the named corpora and return the split file's path.

    Every file is written as a converted copy with its parts' programs (:data:`PART_PROGRAMS`);
    the JSB chorales are converted from JSON. The split file
    (``splits.csv``: ``path,split``) lists the chorales with their published split; other files
    are left to ``prepare``'s content-hash split.
    """
    datasets, out_dir = Path(datasets), Path(out_dir)
    rows: list[tuple[str, str]] = []
    for name in names:
        if name not in CORPORA:
            raise MidiforgeError(f"corpus {name!r} is unknown; expected one of {sorted(CORPORA)}")
        corpus = CORPORA[name]
        target = out_dir / corpus.label
        target.mkdir(parents=True, exist_ok=True)
        if name == "jsb":
            for file, split in write_jsb_midi(datasets, target).items():
                rows.append((f"{corpus.label}/{file}", split))
            continue
        files = sorted((datasets / corpus.folder).glob(corpus.pattern))
        if not files:
            raise MidiforgeError(f"no files match {corpus.folder}/{corpus.pattern} in {datasets}")
        for file in files:
            copy = target / file.name
            if copy.is_symlink():  # a folder laid out by an older midiforge
                copy.unlink()
            if name == "pop909":
                copy_pop909_song(file, copy)
            else:
                with_part_programs(symusic.Score(str(file)), name).dump_midi(str(copy))
    split_file = out_dir / "splits.csv"
    with split_file.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "split"])
        writer.writerows(rows)
    return split_file
