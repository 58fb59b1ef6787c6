"""Benchmark: chord adherence of the shipped model with ``--chords`` vs without, against a ceiling.

Target (docs/benchmarks.md, issue 16): ``midiforge generate --chords "Am F C G" --bars 8 -n 8``
with the shipped model reaches chord adherence (:func:`midiforge.metrics.adherence.
chord_adherence`: share of each bar's pitched note-time on the bar's chord tones, averaged over
bars) of at least 0.8 of the ceiling, and at least 2x what the same call reaches without
``--chords`` (measured against the same progression).

The ceiling is the same figure for real POP909 songs against their own annotations
(``chord_midi.txt``), on the songs the shipped default's dataset puts in its test split (read
from ``--manifest``, the dataset's manifest.json; without it, the POP909 songs whose number ends
in 0). Beside it: the same songs against the chord detector's labels, and the detector's
agreement with the annotation.

``--sweep`` runs the with-chords call at several bonuses (nats), to choose
``midiforge.sampling.musical.CHORD_BONUS_NATS``.

A run trained with chord tokens (``prepare --controls chords``) also gets a row with the tokens
alone (``--no-chord-steer``): what it learned, without the steer.

    python bench/chords.py [--n 8] [--bars 8] [--chords "Am F C G"] [--seeds 0,1] [--run RUN]
                           [--sweep 1,2,3,4,6] [--manifest build/default/dataset/manifest.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import midiforge.sampling.musical as musical
from midiforge.io.midi import load_midi
from midiforge.metrics.adherence import chord_adherence, pop909_ceiling
from midiforge.sampling.generate import generate

ROOT = Path(__file__).resolve().parents[1]
POP909 = ROOT.parent / "shared" / "datasets" / "pop909"
TARGET_CEILING, TARGET_RATIO = 0.8, 2.0


def test_songs(manifest: Path | None) -> tuple[list[Path], str]:
    """The POP909 song folders of the dataset's test split, and where the list came from."""
    if manifest is not None and manifest.is_file():
        files = json.loads(manifest.read_text())["files"]
        names = sorted(
            Path(f["path"]).stem
            for f in files
            if f.get("split") == "test" and f["path"].startswith("pop/")
        )
        return [POP909 / n for n in names], f"test split of {manifest}"
    folders = sorted(p for p in POP909.iterdir() if p.is_dir() and p.name.endswith("0"))
    return folders, "POP909 songs numbered ...0"


def adherence(chords: str | None, progression: str, args, **extra) -> tuple[float, list[float]]:
    """Mean chord adherence (against ``progression``) of ``--n`` pieces per seed."""
    values = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            result = generate(args.run, out_dir=out, n=args.n, bars=args.bars, seed=seed,
                              chords=chords, device="cpu", **extra)  # fmt: skip
            for path in result.paths:
                value = chord_adherence(load_midi(path), progression)
                if value is not None:
                    values.append(value)
    return float(np.mean(values)), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--chords", default="Am F C G")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (each: n pieces)")
    parser.add_argument("--sweep", default="", help="comma-separated bonuses (nats) to try")
    parser.add_argument("--run", default=None, help="a RUN dir (default: the shipped model)")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT / "build" / "default" / "dataset" / "manifest.json"
    )
    args = parser.parse_args()  # fmt: skip
    args.seeds = [int(s) for s in args.seeds.split(",")]
    songs, source = test_songs(args.manifest)
    ceiling = pop909_ceiling(songs)
    print(f"ceiling: {len(songs)} POP909 songs ({source})")
    print(f"  against their annotations: {ceiling['annotated']:.3f}")
    print(f"  against the chord detector: {ceiling['detected']:.3f}")
    print(f"  detector agrees with the annotation on {ceiling['agreement']:.1%} of bars")
    without, _ = adherence(None, args.chords, args)
    print(f"\nwithout --chords: {without:.3f}")
    bonuses = [float(b) for b in args.sweep.split(",") if b] or [musical.CHORD_BONUS_NATS]
    print("| bonus (nats) | adherence | / ceiling | / without |")
    print("| --- | --- | --- | --- |")
    for bonus in bonuses:
        musical.CHORD_BONUS_NATS = bonus
        with_chords, _ = adherence(args.chords, args.chords, args)
        print(f"| {bonus:g} | {with_chords:.3f} | {with_chords / ceiling['annotated']:.2f} "
              f"| {with_chords / without:.2f} |", flush=True)  # fmt: skip
    if learned_chords(args.run):
        alone, _ = adherence(args.chords, args.chords, args, chord_steer=False)
        print(f"| learned chord tokens alone (--no-chord-steer) | {alone:.3f} "
              f"| {alone / ceiling['annotated']:.2f} | {alone / without:.2f} |")  # fmt: skip
    print(f"targets: / ceiling >= {TARGET_CEILING}, / without >= {TARGET_RATIO}")


def learned_chords(run: str | None) -> bool:
    """Whether the run (or the shipped model) was trained with chord tokens."""
    from midiforge.store.names import tokenizer_path
    from midiforge.store.run_dir import shipped_run
    from midiforge.store.tokenizer_file import load_tokenizer

    vocab = load_tokenizer(tokenizer_path(run or shipped_run())).vocab
    return any(token.startswith("Chord_") for token in vocab)


if __name__ == "__main__":
    main()
