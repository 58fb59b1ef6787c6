"""Benchmark: how well ``generate --harmonize`` follows the chords it detects under a melody.

For Nottingham tunes (track 0 the melody, track 1 the chords; the shipped models learned folk as
a violin melody over guitar chords), the melody track alone is written to a file on the violin
and harmonized by a shipped model. Figures, each :func:`midiforge.metrics.adherence.
chord_adherence` against the chords :func:`midiforge.sampling.harmonize.melody_chords` detects
under the melody:

* ``steered``: the accompaniment ``--harmonize`` writes (its tracks only, the melody left out);
* ``unsteered``: the same call with ``--chords N`` (no chord steer: what the model plays under
  the melody on its own, with the same instruments, range and length);
* ``reference``: the tune's own chord track, as a musician harmonized it;
* ``steered_notes`` and ``reference_notes``: notes per bar of the steered accompaniment and of
  the tune's chord track, so a thin accompaniment (fewer notes fit more easily) shows;
* ``steered_cut``: the steered accompaniment with every note cut at the next bar line, and
  ``crossing``: the share of its notes that sound past one. A check, not a feature: a note held
  into the next bar counts against that bar's chord, so this says how much of the gap to the
  reference is notes that ring over a chord change rather than wrong pitches.

    python bench/harmonize.py [--tunes 8] [--family transformer] [--style folk] [--seed 0]
                              [--run RUN_DIR]  # a trained run instead of a shipped family
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from symusic import Score

from midiforge.metrics.adherence import chord_adherence
from midiforge.sampling.generate import generate
from midiforge.sampling.harmonize import melody_chords, read_melody
from midiforge.sampling.infill import bar_lines

ROOT = Path(__file__).resolve().parents[1]
NOTTINGHAM = ROOT.parent / "shared" / "datasets" / "nottingham"
VIOLIN = 40  # the program the shipped models learned Nottingham's melodies on


def tunes(count: int) -> list[Path]:
    """``count`` tunes spread over the sorted corpus (every k-th), each with a chord track."""
    files = sorted(NOTTINGHAM.glob("*.mid"))
    step = max(len(files) // (count * 2), 1)
    found = [f for f in files[::step] if len(Score(str(f)).tracks) > 1]
    return found[:: max(len(found) // count, 1)][:count]


def part(score: Score, keep: list[int]) -> Score:
    out = score.copy()
    out.tracks = [score.tracks[i] for i in keep]
    return out


def cut_at_bars(score: Score) -> tuple[Score, float]:
    """``score`` with each note ending by the bar line after its onset; the share it cut."""
    out = score.copy()
    lines = bar_lines(score)
    cut = total = 0
    for track in out.tracks:
        for note in track.notes:
            k = int(np.searchsorted(lines, note.time, side="right"))
            total += 1
            if k < len(lines) and note.time + note.duration > lines[k]:
                note.duration = int(lines[k] - note.time)
                cut += 1
    return out, cut / max(total, 1)


def one_tune(path: Path, work: Path, args: argparse.Namespace) -> dict:
    """The three figures of one tune."""
    song = Score(str(path))
    melody_path = work / f"{path.stem}_melody.mid"
    melody = part(song, [0])
    melody.tracks[0].program = VIOLIN
    melody.dump_midi(str(melody_path))
    chords = " ".join(melody_chords(read_melody(melody_path)))
    bars = len(bar_lines(melody)) - 1
    row = {"tune": path.stem, "chords": chords,
           "reference": chord_adherence(part(song, [1]), chords),
           "reference_notes": song.tracks[1].note_num() / bars}  # fmt: skip
    for name, extra in (("steered", {}), ("unsteered", {"chords": "N"})):
        begin = time.perf_counter()
        result = generate(model=None if args.run else args.family, run=args.run,
                          out_dir=work / name / path.stem, n=1, seed=args.seed,
                          harmonize=melody_path, style=args.style, device="cpu",
                          **extra)  # fmt: skip
        written = Score(str(result.paths[0]))
        accompaniment = part(written, list(range(1, len(written.tracks))))
        row[name] = chord_adherence(accompaniment, chords)
        row[f"{name}_seconds"] = time.perf_counter() - begin
        if name == "steered":
            row["steered_notes"] = accompaniment.note_num() / bars
            cut, row["crossing"] = cut_at_bars(accompaniment)
            row["steered_cut"] = chord_adherence(cut, chords)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunes", type=int, default=8)
    parser.add_argument("--family", default="transformer")
    parser.add_argument("--style", default="folk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, help="a run folder to harmonize with (not --family)")
    parser.add_argument("--keep", type=Path, help="folder to keep the written files in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for path in tunes(args.tunes):
            rows.append(one_tune(path, work, args))
            print(json.dumps(rows[-1]), flush=True)
    means = {k: float(np.mean([r[k] for r in rows if r[k] is not None]))
             for k in ("steered", "unsteered", "reference", "steered_cut", "crossing",
                       "steered_notes", "reference_notes")}  # fmt: skip
    family = str(args.run or args.family)
    print(json.dumps({"family": family, "style": args.style, "tunes": len(rows), **means}))


if __name__ == "__main__":
    main()
