"""Benchmark: how far key guidance puts a key-conditioned diffusion model's notes in key.

For each guidance scale it samples ``--pieces`` pieces per style from the shipped diffusion model
(or ``--run``), each told a key drawn per piece as ``generate`` draws it, and reports the share
of notes in their piece's best major or minor scale (``metrics.pitch.scale_consistency``). As
the baseline in the same run it reads as many real held-out pieces of each style from the
shared datasets. It prints the ratio generated / real for each style, so 1.0 means as much in
key as real music. Above 1 the notes are more in key than real music's.

    python bench/key_guidance.py [--run RUN] [--scales 1,2,4,8] [--pieces 8] [--windows 1]

It uses the same call as ``midiforge generate --model diffusion --style S --key-guidance G``,
through :func:`midiforge.sampling.diffusion.generate_notes`, with 50 DDIM steps, seed 0 and
no key requested. Figures: docs/benchmarks.md, "Diffusion told its key".
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from symusic import Score

from midiforge.data import encode
from midiforge.data.corpora import jsb_score
from midiforge.metrics.pitch import scale_consistency
from midiforge.sampling.diffusion import generate_notes
from midiforge.store.run_dir import load_run, shipped_run

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MIDIFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))
REAL = {"folk": ("nottingham", "*.mid"), "pop": ("pop909", "*/[0-9][0-9][0-9].mid")}


def real_scores(style: str, count: int) -> list[Score]:
    """``count`` real pieces of ``style``: the JSB chorales' validation split, or the last
    files by name of Nottingham and POP909 (away from the first ones the tests read)."""
    if style == "chorale":
        data = json.loads((DATASETS / "jsb_chorales" / "Jsb16thSeparated.json").read_text())
        return [jsb_score(piece) for piece in data["valid"][:count]]
    folder, pattern = REAL[style]
    return [Score(str(f)) for f in sorted((DATASETS / folder).glob(pattern))[-count:]]


def real_share(style: str, count: int) -> float:
    """Mean best-scale share of ``count`` real pieces of ``style``."""
    scores = real_scores(style, count)
    if not scores:
        raise SystemExit(f"no {style} pieces under {DATASETS}; set MIDIFORGE_DATASETS")
    return float(np.mean([scale_consistency(encode.notes_from_score(s)) for s in scores]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a run dir (default: shipped)")
    parser.add_argument("--scales", default="1,2,4,8")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--windows", type=int, default=1)
    args = parser.parse_args()
    run = load_run(args.run if args.run is not None else shipped_run("diffusion"))
    model = run.model
    if not model.config.key_condition:
        raise SystemExit("this run was not trained with key_condition: nothing to guide")
    scales = [float(s) for s in args.scales.split(",")]
    print(f"{'style':8} {'real':>6} " + " ".join(f"{'g=' + format(s, 'g'):>13}" for s in scales))
    for style in model.label_names:
        real = real_share(style, args.pieces)
        cells = []
        for scale in scales:
            start = time.perf_counter()
            pieces = generate_notes(model, n=args.pieces, number=args.windows, steps=50,
                                    label=style, seed=0, key_guidance=scale)  # fmt: skip
            share = float(np.mean([scale_consistency(p) for p in pieces]))
            cells.append(f"{share:.3f} ×{share / real:.2f} {time.perf_counter() - start:4.1f}s")
        print(f"{style:8} {real:6.3f} " + " ".join(f"{c:>13}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
