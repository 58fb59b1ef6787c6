"""Benchmark: learned chord tokens (``prepare --controls chords``) against the sampling-time steer.

Two small transformers, trained for the same time on the same POP909 songs (one thread each,
``prepare``'s own train/valid/test split by content hash): one on the plain REMI stream, one with
each bar's chord token after its bar line (from POP909's annotations, dropout as
:mod:`midiforge.data.controls` documents). Then ``generate --chords "Am F C G" --bars 8 -n 8``:

* ``plain + steer``: the plain model with the chord steer (what the shipped model does today);
* ``controls, forced tokens``: the controls model, each bar's chord token forced, no steer
  (``--no-chord-steer``): what the model learned alone;
* ``controls, forced + steer``: both;
* each model without ``--chords`` (measured against the same progression): the baseline.

Each figure is :func:`midiforge.metrics.adherence.chord_adherence` (share of each bar's pitched
note-time on its chord's tones, mean over bars, then over pieces), beside the POP909 ceiling of
``bench/chords.py`` (:func:`midiforge.metrics.adherence.pop909_ceiling`: the test split's songs
against their own annotations).

    python bench/learned_chords.py [--songs 200] [--time 8m | --steps N] [--threads 1] [--n 8]
                    [--bars 8] [--chords "Am F C G"] [--seeds 0] [--work build/learned_chords]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POP909 = ROOT.parent / "shared" / "datasets" / "pop909"
# a small Music Transformer (about 0.7M parameters) and a schedule for minutes on one thread
MODEL = ["model.d_model=128", "model.n_layers=3", "model.n_heads=4", "model.d_ff=512",
         "model.max_seq_len=256", "model.max_rel=256", "model.dropout=0.1"]  # fmt: skip
TRAIN = ["train.batch_size=8", "train.seq_len=256", "train.lr=1e-3", "train.warmup_steps=50",
         "train.eval_every=50", "train.eval_batches=8", "train.patience=0", "train.steps=100000",
         "train.augment=true", "train.seed=0"]  # fmt: skip


def link_songs(count: int, src: Path) -> None:
    """``src/NNN/NNN.mid`` and ``src/NNN/chord_midi.txt`` for the first ``count`` songs."""
    for folder in sorted(p for p in POP909.iterdir() if p.is_dir())[:count]:
        (src / folder.name).mkdir(parents=True, exist_ok=True)
        for name in (f"{folder.name}.mid", "chord_midi.txt"):
            link = src / folder.name / name
            if not link.exists():
                link.symlink_to((folder / name).resolve())


def test_folders(dataset: Path) -> list[Path]:
    """The POP909 song folders of the dataset's test split."""
    files = json.loads((dataset / "manifest.json").read_text())["files"]
    return [POP909 / Path(f["path"]).parent.name for f in files if f.get("split") == "test"]


def adherence(run: Path, progression: str, args, **options) -> float:
    """Mean chord adherence (against ``progression``) of ``--n`` pieces per seed."""
    import tempfile

    from midiforge.io.midi import load_midi
    from midiforge.metrics.adherence import chord_adherence
    from midiforge.sampling.generate import generate

    values = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            result = generate(run, out_dir=out, n=args.n, bars=args.bars, seed=seed,
                              device="cpu", **options)  # fmt: skip
            for path in result.paths:
                value = chord_adherence(load_midi(path), progression)
                if value is not None:
                    values.append(value)
    return float(np.mean(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=200)
    parser.add_argument("--time", default="8m", help="training budget per model")
    parser.add_argument("--steps", type=int, default=None,
                        help="train each model this many steps instead of --time (the same work "
                        "for both on a machine whose load changes between the two)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--chords", default="Am F C G")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (each: n pieces)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "learned_chords")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the trainer's thread count (settings)
    from midiforge.data.prepare import prepare
    from midiforge.metrics.adherence import pop909_ceiling
    from midiforge.training.run import train

    src = args.work / "src"
    link_songs(args.songs, src)
    runs = {}
    for name, controls in (("plain", None), ("controls", ["chords"])):
        data = args.work / f"data-{name}"
        begin = time.perf_counter()
        result = prepare(src, data, controls=controls, jobs=args.threads, quiet=True,
                         overwrite=True)  # fmt: skip
        print(f"{name}: prepared {result.kept} songs in {time.perf_counter() - begin:.0f} s "
              f"({result.splits['train']['tokens']} train tokens)", flush=True)  # fmt: skip
        run_dir = args.work / f"run-{name}"
        if (run_dir / "model.safetensors").exists():
            print(f"{name}: reusing {run_dir}", flush=True)
        else:
            limit = {"time": args.time} if args.steps is None else {"steps": args.steps,
                                                                    "time": "none"}  # fmt: skip
            train(data, model="transformer", overrides=MODEL + TRAIN, run_dir=run_dir,
                  device="cpu", **limit)  # fmt: skip
        runs[name] = run_dir
        done = json.loads((run_dir / "result.json").read_text())
        print(f"{name}: {done['steps']} steps in {done['seconds']:.0f} s, best valid loss "
              f"{done['best_valid_loss']:.3f}", flush=True)  # fmt: skip
    ceiling = pop909_ceiling(test_folders(args.work / "data-plain"))["annotated"]
    print(f"ceiling: {ceiling:.3f} (test-split songs against their annotations)")
    c = args.chords
    rows = [
        ("plain model + steer", adherence(runs["plain"], c, args, chords=c)),
        ("controls model, forced tokens, no steer",
         adherence(runs["controls"], c, args, chords=c, chord_steer=False)),
        ("controls model, forced tokens + steer", adherence(runs["controls"], c, args, chords=c)),
        ("plain model, no --chords", adherence(runs["plain"], c, args)),
        ("controls model, no --chords", adherence(runs["controls"], c, args)),
    ]  # fmt: skip
    print(f"\n--chords {c!r} --bars {args.bars} -n {args.n}, seeds {args.seeds}")
    print("| model and request | chord adherence | / ceiling |")
    print("| --- | --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value:.3f} | {value / ceiling:.2f} |")


if __name__ == "__main__":
    main()
