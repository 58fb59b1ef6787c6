"""Train several model families on the same music under one budget and compare them.

Examples: ``midiforge compare my_midi/ --models transformer,lstm,lstm-multihead --time 3m``
(a MIDI folder is prepared once into OUT/dataset); ``midiforge compare data/ --steps 500 -o
cmp/``. Each family trains from scratch into OUT/runs/FAMILY and samples into
OUT/samples/FAMILY; OUT/report.md, report.json and piano_rolls.png hold parameters, training
time and throughput, held-out NLL per note (token families; the note LSTM's heads; diffusion's
denoising loss apart), MGEval overlaps with the held-out ceiling, memorization, sampling speed
and a ranking. ``--set train.key=value`` changes every family, ``--set
FAMILY.model.key=value`` one of them.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from midiforge.training.compare_defaults import (
        DEFAULT_NOTES,
        DEFAULT_PIECES,
        DEFAULT_TIME,
        FAMILIES,
    )

    parser.add_argument("data", help="a dataset dir from `midiforge prepare`, or a MIDI folder")
    parser.add_argument(
        "--models",
        default=",".join(FAMILIES),
        metavar="LIST",
        help="families to compare, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--time",
        default=None,
        metavar="DURATION",
        help=f"training budget per family: 180, 90s, 3m, 1h (default {DEFAULT_TIME} unless "
        "--steps is given)",
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per family")
    parser.add_argument(
        "-o", "--out", default=None, metavar="DIR", help="report folder (default compare/<time>)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="train.key=value for every family, FAMILY.model.key=value for one; repeatable",
    )
    parser.add_argument(
        "--pieces", type=int, default=DEFAULT_PIECES, help="pieces sampled per family (%(default)s)"
    )
    parser.add_argument(
        "--notes", type=int, default=DEFAULT_NOTES, help="notes asked for per piece (%(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds training and sampling")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    from midiforge import api

    result = api.compare(
        args.data,
        models=args.models,
        time=args.time,
        steps=args.steps,
        out_dir=args.out,
        overrides=args.overrides,
        pieces=args.pieces,
        notes=args.notes,
        device=args.device,
        seed=args.seed,
        progress=lambda line: print(f"compare: {line}", file=sys.stderr, flush=True),
    )
    print(result.summary())
    return 0
