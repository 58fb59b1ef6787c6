"""Train a model on a prepared dataset or a folder of MIDI files; write a run directory.

Examples: ``midiforge train my_midi/`` (a plain folder: about 10 minutes, see ``--time``);
``midiforge train data/ --model lstm --steps 500``;
``midiforge train my_midi/ --init runs/base`` (fine-tune);
``midiforge train --resume runs/lstm-20250101-120000 --time 5m`` (continue exactly, 5 more
minutes); ``torchrun --nproc_per_node 2 -m midiforge train data/`` (data-parallel).
The last line printed says where the run stopped and why, and names the run dir.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        nargs="?",
        help="a dataset dir from `midiforge prepare`, or a folder of MIDI files "
        "(optional with --resume)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model family, e.g. transformer, lstm, gru (default transformer)",
    )
    parser.add_argument("--config", help="YAML file with sections model: and train:")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.lr=1e-3 --set model.d_model=256",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps (train.steps; default 2000); given alone on a MIDI folder, "
        "it replaces the folder's 10-minute budget",
    )
    parser.add_argument(
        "--time",
        default=None,
        metavar="DURATION",
        help="time budget of this session (train.time): 600, 90s, 10m, 1h30m, or none; "
        "default 10m for a MIDI folder, none for a prepared dataset; with --resume, "
        "this much more time",
    )
    parser.add_argument("--run-dir", help="output run directory (default runs/<model>-<time>)")
    parser.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    parser.add_argument(
        "--init",
        metavar="RUN",
        help="start from a trained run's weights (fine-tuning); 'default' = the shipped model "
        "(what a MIDI folder of under 200 files uses unless --init none)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    from midiforge import api
    from midiforge.training.logbook import read_result
    from midiforge.training.settings import parse_duration

    if args.time is not None:
        parse_duration(args.time, "--time")  # a bad value: one line naming --time
    kwargs = {} if args.model is None else {"model": args.model}
    run_dir = api.train(
        args.dataset,
        config=args.config,
        overrides=args.overrides,
        run_dir=args.run_dir,
        resume=args.resume,
        init=args.init,
        device=args.device,
        steps=args.steps,
        time=args.time,
        **kwargs,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        message = read_result(run_dir).get("message")
        print(f"{message}; run in {run_dir}" if message else run_dir)
    return 0
