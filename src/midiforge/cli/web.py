"""Serve the web page on 127.0.0.1: pick a model, generate, listen, download the MIDI."""

from __future__ import annotations

import argparse

from midiforge.web.config import WebConfig

DEFAULTS = WebConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", default=None, help="a run folder to offer first (it may lie outside --runs-dir)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULTS.port, help=f"TCP port (default {DEFAULTS.port})"
    )
    parser.add_argument(
        "--runs-dir",
        default=DEFAULTS.runs_dir,
        help=f"folder searched for trained runs (default {DEFAULTS.runs_dir})",
    )
    parser.add_argument(
        "--out-dir",
        default=DEFAULTS.out_dir,
        help=f"where generated MIDI, audio and piano rolls go (default {DEFAULTS.out_dir})",
    )
    parser.add_argument(
        "--soundfont", default=None, help="General MIDI .sf2 for the audio (default: the system's)"
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=DEFAULTS.job_seconds,
        help=f"wall-clock budget of one generation job; a job still running then is stopped "
        f"(default {DEFAULTS.job_seconds:g})",
    )


def run(args: argparse.Namespace) -> int:
    from midiforge.errors import MidiforgeError

    try:
        from midiforge.web.serving import serve
    except ImportError as exc:
        raise MidiforgeError(
            f"the web page needs the 'web' extra ({exc.name} is missing); "
            "install it with: pip install 'midiforge[web]'"
        ) from None

    config = WebConfig(
        runs_dir=args.runs_dir,
        run=args.run,
        port=args.port,
        out_dir=args.out_dir,
        soundfont=args.soundfont,
        job_seconds=args.job_seconds,
    )
    serve(
        config,
        on_ready=lambda url: print(f"midiforge web: serving {url} (Ctrl-C stops)", flush=True),
    )
    return 0
