"""Render MIDI files to audio (FluidSynth, a General MIDI soundfont) and/or piano-roll PNGs.

Without --wav or --png, WAV is rendered. The soundfont is --soundfont, else
$MIDIFORGE_SOUNDFONT, else the system's (apt-get install fluid-soundfont-gm). Outputs are named
after each MIDI file and written beside it, or into --out-dir. Each output lasts at most
--max-seconds (default 600): audio stops a few seconds after the last note-off, and a longer
piece is rendered up to the cap with a warning.
"""

from __future__ import annotations

import argparse

from midiforge import api
from midiforge.io.bounds import DEFAULT_MAX_SECONDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="MIDI", help="MIDI files or folders of them")
    parser.add_argument("--wav", action="store_true", help="render audio with FluidSynth")
    parser.add_argument("--png", action="store_true", help="draw a piano roll")
    parser.add_argument(
        "--soundfont", default=None, metavar="FILE", help="a General MIDI .sf2/.sf3"
    )
    parser.add_argument(
        "--out-dir", default=None, metavar="DIR", help="where to write (default: beside each MIDI)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        metavar="S",
        help=f"longest audio / piano roll to render (default {DEFAULT_MAX_SECONDS:g})",
    )


def run(args: argparse.Namespace) -> int:
    wav = args.wav or not args.png
    written = api.render(
        args.paths,
        wav=wav,
        png=args.png,
        soundfont=args.soundfont,
        out_dir=args.out_dir,
        max_seconds=args.max_seconds,
    )
    for path in written:
        print(path)
    return 0
