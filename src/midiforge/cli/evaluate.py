"""Evaluate a trained run on held-out data, or generated MIDI against a reference.

midiforge evaluate RUN [--split valid|test]
    negative log-likelihood per token (nats, bits) and perplexity on the split.
midiforge evaluate --generated DIR --reference DATASET_OR_DIR [--out DIR] [--overlap minmax|full]
    musical metrics per file, in aggregate and per instrument class (GM families, drums),
    overlapping areas with their reference-halves ceilings, framewise Consistency/Variance with
    a ceiling row, and a memorization audit; writes report.md, report.json and PNG histograms
    to --out.
"""

from __future__ import annotations

import argparse
import math

from midiforge import api
from midiforge.metrics.memorization import DEFAULT_THRESHOLD_NOTES
from midiforge.metrics.overlap import DEFAULT_OVERLAP_BOUNDS, OVERLAP_BOUNDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", nargs="?", help="a run directory written by train")
    parser.add_argument(
        "--split",
        default="valid",
        choices=["valid", "test"],
        help="held-out split for RUN (default: %(default)s)",
    )
    parser.add_argument("--generated", metavar="DIR", help="folder of generated MIDI files")
    parser.add_argument(
        "--reference",
        metavar="DATASET_OR_DIR",
        help="a prepared dataset (see --reference-split, --style) or a folder of MIDI files",
    )
    parser.add_argument(
        "--reference-split",
        default="train",
        choices=["train", "valid", "test"],
        help="split of a dataset reference to compare with (default: %(default)s); "
        "memorization is always checked against train",
    )
    parser.add_argument("--style", help="only the reference files with this label")
    parser.add_argument(
        "--out", metavar="DIR", help="where the report goes (default: evaluation/ for --generated)"
    )
    parser.add_argument(
        "--threshold-notes",
        type=int,
        default=DEFAULT_THRESHOLD_NOTES,
        metavar="N",
        help="flag files sharing ≥ N notes with training (default: %(default)s)",
    )
    parser.add_argument(
        "--overlap",
        default=DEFAULT_OVERLAP_BOUNDS,
        choices=OVERLAP_BOUNDS,
        help="where MGEval's overlap integral runs: minmax = between the smallest and largest "
        "distance, as MGEval's code; full = the whole line (default: %(default)s)",
    )
    parser.add_argument(
        "--beats-per-bar",
        type=float,
        metavar="BEATS",
        help="bar length in quarter notes for every piece (default: each MIDI file's first "
        "time signature, 6/8 = 3; a dataset's pieces 4)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    asked = parser.add_argument_group("with --generated: how well the files kept a request")
    asked.add_argument("--key", help="share of note-time on this key's scale, e.g. 'D minor'")
    asked.add_argument("--range", metavar="LOW-HIGH", help="share of notes in range, e.g. C3-C6")
    asked.add_argument("--max-polyphony", type=int, metavar="N", help="most notes at once <= N")
    asked.add_argument("--bars", type=int, metavar="N", help="length in bars == N")
    asked.add_argument(
        "--chords",
        metavar="CHORDS",
        help="share of each bar's note-time on its chord, e.g. 'Am F C G'",
    )


def _asked(args: argparse.Namespace) -> dict[str, object] | None:
    """The request given with --key/--range/--max-polyphony/--bars/--chords, normalised."""
    from midiforge.chords import parse_progression
    from midiforge.pitches import parse_key, parse_range

    asked = {
        "key": parse_key(args.key) if args.key else None,
        "range": parse_range(args.range) if args.range else None,
        "max_polyphony": args.max_polyphony,
        "bars": args.bars,
        "chords": parse_progression(args.chords) if args.chords else None,
    }
    return {k: v for k, v in asked.items() if v is not None} or None


def run(args: argparse.Namespace) -> int:
    result = api.evaluate(
        args.run,
        split=args.split,
        generated=args.generated,
        reference=args.reference,
        out=args.out,
        threshold_notes=args.threshold_notes,
        device=args.device,
        reference_split=args.reference_split,
        style=args.style,
        beats_per_bar=args.beats_per_bar,
        overlap_bounds=args.overlap,
        asked=_asked(args),
    )
    if args.run is not None:
        print(f"{result['model']} on {result['split']} ({result['files']} files):")
        if result["kind"] == "tokens":
            print(
                f"  NLL {result['nats']:.4f} nats/token = {result['bits']:.4f} bits/token, "
                f"perplexity {result['perplexity']:.3f}, {result['count']} tokens"
            )
        elif result["kind"] == "diffusion":
            print(
                f"  denoising loss {result['denoising_loss']:.4f} "
                f"(mean over {result['timesteps']} fixed timesteps, seeded noise)"
            )
        else:
            print(f"  loss {result['loss']:.4f} over {result['count']} notes")
        for name, value in result.get("per_head", {}).items():
            print(f"  {name}: {value:.4f}")
        return 0
    mem = result["memorization"]
    print(f"{result['n_generated']} generated vs {result['reference']}")
    for name, entry in result["aggregate"].items():
        if "generated" in entry:
            print(
                f"  {name:22s} generated {entry['generated']['mean']:8.3f}  reference "
                f"{entry['reference']['mean']:8.3f}  overlap {entry['oa']:.3f}"
            )
    classes = [
        f"{name} {c['n_generated']}/{c['n_reference']}"
        + ("" if c["status"] == "both" else f" ({c['status']})")
        for name, c in result["per_instrument"].items()
    ]
    print(f"  instrument classes (generated/reference pieces): {', '.join(classes) or 'none'}")
    cv = result["framewise"]["consistency_variance"]
    print(
        f"  framewise pitch consistency {cv['pitch']['consistency']:.3f} variance "
        f"{cv['pitch']['variance']:.3f}; duration consistency "
        f"{cv['duration']['consistency']:.3f} variance {cv['duration']['variance']:.3f}"
    )
    share = mem["share_flagged"]
    print(
        f"  memorization: longest shared run {max(mem['longest_runs'], default=0)} notes; "
        f"{'–' if math.isnan(share) else f'{share:.0%}'} of files ≥ {mem['threshold_notes']}"
    )
    for name, value in result.get("adherence", {}).get("summary", {}).items():
        print(f"  adherence: {name} {value:.4g}")
    print(f"report: {args.out or 'evaluation'}/report.md")
    return 0
