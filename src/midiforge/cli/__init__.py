"""The ``midiforge`` command: argument parsing only.

Each subcommand is a module in this package with ``add_arguments(parser)`` and ``run(args)``;
``run`` calls exactly one function of :mod:`midiforge.api`. A :class:`MidiforgeError` becomes one
line on stderr and exit status 2, so scripts can tell bad input from a crash.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from midiforge import __version__
from midiforge.errors import MidiforgeError

# name -> one-line help; the module midiforge.cli.<name> implements it.
COMMANDS: dict[str, str] = {
    "prepare": "clean, split and encode a folder of MIDI files into a dataset",
    "menu": "interactive menu: train, continue training, or generate (no arguments = menu)",
    "web": "serve the web page on 127.0.0.1 to generate, listen and download MIDI",
    "train": "train a model on a dataset or a MIDI folder; write a run directory",
    "generate": "sample new MIDI files from a trained run",
    "convert": "convert scores, Guitar Pro, audio or music21:NAME into MIDI files",
    "render": "render MIDI files to WAV (FluidSynth) and/or piano-roll PNG",
    "evaluate": "held-out likelihood of a run, or metrics of generated MIDI against a reference",
    "benchmark": "reproduce a published likelihood benchmark (jsb16, polyphonic) and compare",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midiforge",
        description="Turn a folder of music into a trained generative model, and the model "
        "into new music.",
    )
    parser.add_argument("--version", action="version", version=f"midiforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"midiforge.cli.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv and "menu" in COMMANDS and sys.stdin.isatty():
        argv = ["menu"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except MidiforgeError as exc:
        print(f"midiforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"midiforge {args.command}: interrupted", file=sys.stderr)
        return 130
