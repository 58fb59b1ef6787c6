"""The shared corpora as data: one short entry per corpus, its quirks fixed in one place.

``build_corpus`` lays out a folder of MIDI files with one sub-folder per style label (``pop/``,
``folk/``, ``chorale/``) so that ``prepare --labels-from folder`` labels them, plus a split file
for corpora that come with a published split (the JSB chorales), so that benchmark test pieces
never land in a training split.

Quirks, in one place:

* POP909 keeps one MIDI per song folder (``pop909/NNN/NNN.mid``); the other files there (beat,
  chord and key annotations) are not music.
* Nottingham is already one MIDI per tune.
* The JSB chorales ship as piano-roll-like JSON, not MIDI. ``Jsb16thSeparated.json`` has exactly
  four voices (S, A, T, B) per 16th-note step with ``-1`` for silence. That format does not tell
  a held note from a repeated one, so a voice's run of equal pitches becomes one held note (the
  usual reading; it merges the occasional re-struck note).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import symusic

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


CORPORA: dict[str, Corpus] = {
    "pop909": Corpus("pop909", "pop", "pop909", "*/[0-9][0-9][0-9].mid"),
    "nottingham": Corpus("nottingham", "folk", "nottingham", "*.mid"),
    "jsb": Corpus("jsb", "chorale", "jsb_chorales", ""),
}


def jsb_score(voices: list[list[int]]) -> symusic.Score:
    """One chorale (steps × 4 voices, MIDI pitch or -1) as a four-track Score.

    Each voice becomes a track; a run of equal pitches is one held note.
    """
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, JSB_TEMPO_BPM))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    step_ticks = int(TICKS_PER_QUARTER * JSB_STEP_BEATS)
    for v, name in enumerate(JSB_VOICES):
        track = symusic.Track(name, 0, False)
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


def build_corpus(datasets: Path, out_dir: Path, names: tuple[str, ...] = tuple(CORPORA)) -> Path:
    """Lay out ``out_dir/{label}/…`` for the named corpora and return the split file's path.

    MIDI corpora are linked (no copies); the JSB chorales are converted. The split file
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
            link = target / file.name
            if not link.exists():
                os.symlink(file.resolve(), link)
    split_file = out_dir / "splits.csv"
    with split_file.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "split"])
        writer.writerows(rows)
    return split_file
