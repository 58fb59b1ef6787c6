"""The ``midiforge`` command: argument parsing only.

Each subcommand is a module in this package with ``add_arguments(parser)`` and ``run(args)``;
``run`` calls exactly one function of :mod:`midiforge.api`.

:func:`main` is the one error boundary. What a person can fix (a :class:`MidiforgeError`, an
:class:`OSError` such as a full disk or a read-only folder, running out of memory) becomes one
line on stderr and exit status 2; Ctrl-C is one line and status 130; anything else is a bug:
one line saying so and status 1. ``--debug`` (before or after the command) adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from midiforge import __version__
from midiforge.errors import MidiforgeError, os_error_message

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
    "compare": "train several model families on your music under one budget; one report",
}
EXIT_BUG = 1  # an internal error: a traceback with --debug
EXIT_USER = 2  # bad input or environment, said in one line (argparse uses 2 as well)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
DEBUG_HELP = "show the Python traceback of any error (for bug reports)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midiforge",
        description="Turn a folder of music into a trained generative model, and the model "
        "into new music.",
    )
    parser.add_argument("--version", action="version", version=f"midiforge {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"midiforge.cli.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=help_text, description=module.__doc__)
        # also after the command; SUPPRESS keeps a leading --debug from being reset to False
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(text: str) -> str:
    """Messages stay on one line, whatever the library's text holds."""
    return " | ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch.cuda.OutOfMemoryError, or torch's CPU allocator giving up."""
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or (isinstance(exc, RuntimeError) and "can't allocate memory" in text)
    )


def _message(exc: BaseException) -> tuple[str, int]:
    """The line to print for ``exc`` and the exit status."""
    if isinstance(exc, MidiforgeError):
        return _one_line(exc) or type(exc).__name__, EXIT_USER
    if isinstance(exc, OSError):
        return _one_line(os_error_message(exc)), EXIT_USER
    if _out_of_memory(exc):
        return (
            f"out of memory ({_one_line(exc) or type(exc).__name__}); use smaller sizes (batch, "
            "model, length) or a machine with more memory",
            EXIT_USER,
        )
    reason = _one_line(exc)
    return (
        f"internal error {type(exc).__name__}"
        + (f": {reason}" if reason else "")
        + " (run with --debug for the traceback)",
        EXIT_BUG,
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 1 bug, 2 bad input, 130 Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv and "menu" in COMMANDS and sys.stdin.isatty():
        argv = ["menu"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    name = f"midiforge {args.command}"
    raise_exceptions = logging.raiseExceptions
    logging.raiseExceptions = args.debug  # a log file on a full disk: no "Logging error" trace
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        line, status = _message(exc)
        print(f"{name}: error: {line}", file=sys.stderr)
        return status
    finally:
        logging.raiseExceptions = raise_exceptions
