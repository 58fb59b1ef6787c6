"""Benchmark: how well a run follows its learned per-bar density and polyphony tokens.

For a run prepared with ``--controls density,polyphony`` (the shipped transformer), each request
``--density N`` (or ``--polyphony P``) forces that bar's control token after every bar line of
``--bars`` bars. Each generated bar is then labelled the way the training data was
(:func:`midiforge.data.controls.bar_labels`: the bucket of its pitched-note count, of its notes
per onset), and the figure is the share of bars whose bucket is the one asked for. Beside it,
the same share with nothing requested (the same seeds and style): how often the model lands in
that bucket on its own. A model that follows its tokens sits well above that baseline; one that
ignores them sits on it.

    python bench/controls.py [--run RUN] [--style pop] [--n 8] [--bars 8] [--seeds 0]
        [--density 2,6,12,24] [--polyphony 1,2,3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from midiforge.data.controls import bar_labels, density_bucket, polyphony_bucket
from midiforge.io.midi import load_midi
from midiforge.sampling.generate import generate


def bars_of(paths: list[Path], bars: int) -> list[tuple[str, str]]:
    """(density bucket, polyphony bucket) of the first ``bars`` bars of every file."""
    out = []
    for path in paths:
        labels = bar_labels(load_midi(path))
        out += list(zip(labels.density, labels.polyphony, strict=True))[:bars]
    return out


def sample_bars(args, **request) -> list[tuple[str, str]]:
    found = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            result = generate(args.run, out_dir=out, n=args.n, bars=args.bars, seed=seed,
                              style=args.style, **request)  # fmt: skip
            found += bars_of(result.paths, args.bars)
    return found


def share(bars: list[tuple[str, str]], which: int, bucket: str) -> float:
    return sum(b[which] == bucket for b in bars) / max(len(bars), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="RUN dir (default: the shipped model)")
    parser.add_argument("--style", default="pop")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--density", default="2,6,12,24")
    parser.add_argument("--polyphony", default="1,2,3")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    free = sample_bars(args)
    print(f"run: {args.run or 'shipped'}  style {args.style}  {args.n} pieces x {args.bars} "
          f"bars x seeds {args.seeds}")  # fmt: skip
    print("| control | asked | bucket | bars in it, asked | bars in it, not asked |")
    print("| --- | --- | --- | --- | --- |")
    hits, bases = [], []
    for name, which, values, bucket_of in (
        ("density", 0, args.density, lambda v: str(int(density_bucket(int(v))))),
        ("polyphony", 1, args.polyphony, lambda v: str(int(polyphony_bucket(float(v))))),
    ):
        for value in [v for v in values.split(",") if v]:
            bucket = bucket_of(value)
            asked = sample_bars(args, **{name: value})
            hit, base = share(asked, which, bucket), share(free, which, bucket)
            hits.append(hit)
            bases.append(base)
            print(f"| {name} | {value} | {bucket} | {hit:.2f} | {base:.2f} |")
    print(f"mean over requests: {sum(hits) / len(hits):.2f} asked, "
          f"{sum(bases) / len(bases):.2f} not asked")  # fmt: skip


if __name__ == "__main__":
    main()
