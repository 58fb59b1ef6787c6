"""Reproduce a published likelihood benchmark on its standard splits and compare.

    midiforge benchmark jsb16 [--model transformer|lstm|gru]
        JSB chorales at 16th notes, voices S A T B per step; NLL per token on valid and test.
    midiforge benchmark polyphonic --set jsb|nottingham|musedata|piano [--model ...]
        piano-roll benchmark; NLL per frame on test, each piece's first frame unscored.

--set also takes overrides, key=value (e.g. --set train.steps=500 --set model.d_model=64); a
--set without "=" names the polyphonic corpus. --run RUN scores an existing benchmark run.
"""

from __future__ import annotations

import argparse

from midiforge import api
from midiforge.errors import MidiforgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=["jsb16", "polyphonic"], help="which protocol")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="VALUE",
        help="polyphonic corpus (jsb, nottingham, musedata, piano) or a "
        "section.key=value override; repeatable",
    )
    parser.add_argument(
        "--model",
        default="transformer",
        metavar="FAMILY",
        help="model family to train: transformer, lstm or gru (default: %(default)s); the note "
        "families (lstm-multihead, diffusion) have no score on these protocols, and say why",
    )
    parser.add_argument("--run", metavar="RUN", help="score this benchmark run; do not train")
    parser.add_argument("--out", metavar="DIR", help="work folder (default: runs/benchmark-...)")
    parser.add_argument(
        "--datasets",
        metavar="DIR",
        help="the shared datasets folder (default: $MIDIFORGE_DATASETS or ../shared/datasets)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def run(args: argparse.Namespace) -> int:
    corpora = [s for s in args.sets if "=" not in s]
    overrides = [s for s in args.sets if "=" in s]
    if len(corpora) > 1:
        raise MidiforgeError(f"--set: one corpus at a time, got {', '.join(corpora)}")
    result = api.benchmark(
        args.name,
        corpus=corpora[0] if corpora else None,
        model=args.model,
        run=args.run,
        out=args.out,
        overrides=overrides,
        datasets=args.datasets,
        device=args.device,
    )
    print(result.table())
    print(f"run: {result.run_dir}; {result.seconds:.0f} s")
    return 0
