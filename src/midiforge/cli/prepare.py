"""Clean, split and encode a folder of MIDI files into a dataset dir.

Scans SRC recursively for .mid/.midi files, parses them in parallel, drops what cannot be used
(each with a reason in OUT/manifest.json), splits train/valid/test by content hash and writes
memory-mapped token and note arrays. OUT appears complete or not at all.
"""

from __future__ import annotations

import argparse
import sys

from midiforge.data.options import PrepareOptions, PrepareResult

_DEFAULTS = PrepareOptions()


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def _programs(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give comma-separated General MIDI program numbers, e.g. 0,1,2"
        ) from None


def _controls(text: str) -> list[str]:
    """``chords,density`` → ``["chords", "density"]`` (the names are checked by prepare)."""
    return [c.strip() for c in text.split(",") if c.strip()]


def _ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give train,valid,test e.g. 0.8,0.1,0.1"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    parser.add_argument("src", metavar="SRC", help="folder of MIDI files (searched recursively)")
    parser.add_argument("out", metavar="OUT", help="dataset folder to create")
    enc = parser.add_argument_group("encoding")
    enc.add_argument(
        "--tokenizer",
        default=d.tokenizer,
        help="MidiTok tokenization: remi, tsd, midilike, structured (default: %(default)s)",
    )
    enc.add_argument(
        "--bpe-vocab",
        type=int,
        default=d.bpe_vocab,
        metavar="N",
        help="train BPE on the train split up to N tokens (default: no BPE)",
    )
    enc.add_argument(
        "--controls",
        type=_controls,
        default=d.controls,
        metavar="LIST",
        help="learned per-bar control tokens, any of chords,density,polyphony, trained with "
        "dropout so the model also works without them (REMI only; default: none)",
    )
    enc.add_argument(
        "--fim",
        action="store_true",
        help="add the fill-in-the-middle markers, so a token model trained with train.fim "
        "reads the bars after an --infill range (REMI only)",
    )
    enc.add_argument(
        "--no-bos-eos",
        dest="bos_eos",
        action="store_false",
        help="do not wrap each file's tokens in BOS ... EOS",
    )
    clean = parser.add_argument_group("cleaning")
    clean.add_argument(
        "--tracks",
        choices=("all", "longest", "merge"),
        default=d.tracks,
        help="all: every track, drums included, with Program tokens; merge: one piano "
        "stream of the pitched tracks; longest: the pitched track with most notes "
        "(default: %(default)s)",
    )
    clean.add_argument(
        "--instrument-groups",
        choices=("programs", "families"),
        default=d.instrument_groups,
        help="programs: keep each GM program; families: one program per GM family "
        "(fewer Program tokens; drums stay drums) (default: %(default)s)",
    )
    clean.add_argument(
        "--programs",
        type=_programs,
        default=d.programs,
        metavar="P,P,...",
        help="keep only these GM programs, e.g. 0-7 piano: 0,1,2,3,4,5,6,7",
    )
    drums = clean.add_mutually_exclusive_group()
    drums.add_argument(
        "--drums",
        dest="drums",
        action="store_true",
        default=d.drums,
        help="keep drum tracks (the default)",
    )
    drums.add_argument("--no-drums", dest="drums", action="store_false", help="drop drum tracks")
    clean.add_argument(
        "--max-note-beats",
        type=_optional_float,
        default=d.max_note_beats,
        metavar="B",
        help="drop notes longer than B beats; 'none' keeps all (default: %(default)s)",
    )
    clean.add_argument(
        "--max-gap-beats",
        type=_optional_float,
        default=d.max_gap_beats,
        metavar="B",
        help="shorten silences longer than B beats by whole bars; "
        "'none' keeps them (default: %(default)s)",
    )
    clean.add_argument(
        "--min-tokens",
        type=int,
        default=d.min_tokens,
        help="skip files with fewer tokens (default: %(default)s)",
    )
    clean.add_argument(
        "--min-notes",
        type=int,
        default=d.min_notes,
        help="skip files with fewer notes (default: %(default)s)",
    )
    clean.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        help="keep files whose notes duplicate an earlier file's",
    )
    split = parser.add_argument_group("splits and labels")
    split.add_argument(
        "--split",
        type=_ratios,
        default=d.split,
        metavar="TR,VA,TE",
        help="train,valid,test fractions by content hash (default: 0.8,0.1,0.1)",
    )
    split.add_argument(
        "--split-by",
        metavar="FILE",
        help="CSV/TSV of path,split (paths relative to SRC) fixing the split of the files it "
        "lists; the others keep the content-hash split",
    )
    split.add_argument(
        "--labels-from",
        metavar="folder|FILE",
        help="'folder': first folder under SRC; or a CSV/TSV of path,label",
    )
    run = parser.add_argument_group("running")
    run.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def format_result(result: PrepareResult) -> str:
    """The summary table printed at the end of ``midiforge prepare``."""
    lines = [f"dataset: {result.path}", f"files kept: {result.kept}"]
    for reason, count in result.skipped.items():
        lines.append(f"skipped ({reason}): {count}")
    lines.append(f"{'split':<8}{'files':>8}{'tokens':>12}{'notes':>12}")
    for name, counts in result.splits.items():
        lines.append(f"{name:<8}{counts['files']:>8}{counts['tokens']:>12}{counts['notes']:>12}")
    lines.append(f"time: {result.seconds:.1f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from midiforge import api

    result = api.prepare(
        args.src,
        args.out,
        tokenizer=args.tokenizer,
        bpe_vocab=args.bpe_vocab,
        bos_eos=args.bos_eos,
        controls=args.controls,
        fim=args.fim,
        tracks=args.tracks,
        programs=args.programs,
        drums=args.drums,
        instrument_groups=args.instrument_groups,
        max_note_beats=args.max_note_beats,
        max_gap_beats=args.max_gap_beats,
        min_tokens=args.min_tokens,
        min_notes=args.min_notes,
        dedup=args.dedup,
        split=args.split,
        split_by=args.split_by,
        labels_from=args.labels_from,
        jobs=args.jobs,
        quiet=args.quiet,
        overwrite=args.overwrite,
    )
    print(format_result(result), file=sys.stdout)
    return 0
