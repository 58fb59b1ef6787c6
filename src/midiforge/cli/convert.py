"""Convert scores, Guitar Pro tabs and audio into a folder of MIDI files.

SRC is a file, a folder (searched recursively, converted in parallel) or music21:NAME, a
composer or collection of the corpus that ships inside music21 (music21:bach,
music21:essenFolksong), read offline. MusicXML/MXL, ABC, Humdrum kern and the other formats
music21 reads go through music21; .gp3/.gp4/.gp5 through PyGuitarPro (tempo, tracks, programs,
ties, repeats unfolded); WAV/FLAC/OGG/MP3 are transcribed with the basic-pitch model shipped
with midiforge. With --audio-format, --trim-every or --trim-at, audio files are cleaned up
instead: re-encoded and cut into pieces (--trim-every at least 0.1 s, at most 10,000 pieces
per file; a file that would need more is skipped with the reason). Files that cannot be
converted are skipped; the reasons are printed and kept in OUT/convert-report.json.
"""

from __future__ import annotations

import argparse

from midiforge import api
from midiforge.io.audio import MIN_TRIM_SECONDS, check_trim_every

MAX_SKIPS_SHOWN = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", metavar="SRC", help="file, folder, or music21:NAME (e.g. music21:bach)"
    )
    parser.add_argument("out", metavar="OUT", help="output folder (or a .mid file for one source)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: CPUs, at most 8)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="convert only the first N files"
    )
    audio = parser.add_argument_group("audio clean-up (instead of transcription)")
    audio.add_argument(
        "--audio-format",
        choices=("wav", "flac", "ogg"),
        default=None,
        help="write audio in this format",
    )
    audio.add_argument(
        "--trim-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"cut into pieces of this length (at least {MIN_TRIM_SECONDS:g})",
    )
    audio.add_argument(
        "--trim-at",
        default=None,
        metavar="FILE",
        help="cut at the times in FILE (seconds, one per line)",
    )


def run(args: argparse.Namespace) -> int:
    check_trim_every(args.trim_every)  # a bad interval is refused before any file is read
    report = api.convert(
        args.src,
        args.out,
        jobs=args.jobs,
        audio_format=args.audio_format,
        trim_every=args.trim_every,
        trim_at=args.trim_at,
        limit=args.limit,
    )
    written = sum(len(c["outputs"]) for c in report.converted)
    print(
        f"converted {len(report.converted)} files into {written} outputs in {args.out} "
        f"({report.seconds:.1f} s); skipped {len(report.skipped)}"
    )
    for skip in report.skipped[:MAX_SKIPS_SHOWN]:
        print(f"  skipped {skip['source']}: {skip['reason']}")
    if len(report.skipped) > MAX_SKIPS_SHOWN:
        print(
            f"  ... and {len(report.skipped) - MAX_SKIPS_SHOWN} more, see the report in {args.out}"
        )
    return 0
