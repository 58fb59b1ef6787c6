"""Benchmark: the seam between inpainted diffusion windows, without and with RePaint resampling.

A piece of K windows is continued by inpainting: each new window keeps the last C notes as
known. The seam is the step from the last known note to the first new one. If the new window
agrees with its context, the seam looks like any other step of the piece; if not, it jumps. We
report, over every seam of every piece, the mean |Δ pitch| (semitones), |Δ log2 duration| and
the onset gap (delta, beats) at the seam, each divided by the same statistic over all other
consecutive notes of the pieces ("seam / interior", 1.0 = no visible seam), for
``resample = 1`` (plain replacement) and ``resample = R`` (Lugmayr et al. 2022).

Without ``--run`` a tiny model is trained first on a Nottingham subset through the real
pipeline (``prepare`` → ``train``), so the script needs nothing but the shared datasets; the
default sizes take a few minutes on two shared CPU cores.

    python bench/diffusion_seams.py [--run RUN] [--files 60] [--train-steps 200] [--rounds 4]

First figures (defaults; 200 training steps, 48 pieces × 3 seams, on a busy 2-core machine):
seam/interior |Δ pitch| 1.14 → 1.02 and |Δ log2 duration| 1.33 → 1.21 from R = 1 to R = 4,
the seam's onset gap 0.92 → 0.78 of the interior's; R = 4 cost 2.7× the sampling time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import diffusion as diffusion_bench  # bench/diffusion.py, beside this script
from midiforge.sampling.diffusion import generate_notes
from midiforge.schema import FIELD
from midiforge.store.run_dir import load_run

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MIDIFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))
WINDOW = 32  # notes per window
MODEL = {"length": WINDOW, "channels": 16, "channel_mults": [1, 2], "kernel_sizes": [5, 3],
         "attention_layers": 1, "attention_heads": 2, "time_dim": 32,
         "schedule": {"num_train_timesteps": 100, "prediction": "v"}}  # fmt: skip
TRAIN = {"window": WINDOW, "batch_size": 16, "lr": 3e-3, "warmup_steps": 10,
         "eval_every": 200, "save_every": 200, "patience": 0, "seed": 0}  # fmt: skip
STATS = ("|d pitch|", "|d log2 duration|", "delta")


def train_run(work: Path, files: int, steps: int) -> tuple[Path, float]:
    """Prepare ``files`` Nottingham tunes and train the tiny model; (run dir, seconds)."""
    return diffusion_bench.train_run(
        work, files, steps, MODEL, TRAIN, min_tokens=64, min_notes=WINDOW
    )


def steps_of(piece: np.ndarray) -> np.ndarray:
    """``(N − 1, 3)``: |Δ pitch|, |Δ log2 duration| and the onset gap between neighbours."""
    pitch = piece[:, FIELD["pitch"]].astype(np.float64)
    log_dur = np.log2(np.maximum(piece[:, FIELD["duration"]].astype(np.float64), 1e-3))
    return np.stack(
        [np.abs(np.diff(pitch)), np.abs(np.diff(log_dur)), piece[1:, FIELD["delta"]]], axis=1
    )


def seam_ratios(pieces: list[np.ndarray], length: int, context: int) -> dict[str, tuple]:
    """Statistic → (mean at seams, mean elsewhere, ratio)."""
    seam_rows, other_rows = [], []
    for piece in pieces:
        diffs = steps_of(piece)  # row i: note i → note i + 1
        first_new = np.arange(length, len(piece), length - context)  # each window's first note
        is_seam = np.zeros(len(diffs), dtype=bool)
        is_seam[first_new - 1] = True
        seam_rows.append(diffs[is_seam])
        other_rows.append(diffs[~is_seam])
    seam, other = np.concatenate(seam_rows), np.concatenate(other_rows)
    out = {}
    for k, name in enumerate(STATS):
        s, o = seam[:, k].mean(), other[:, k].mean()
        out[name] = (s, o, s / max(o, 1e-9))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a trained diffusion run (default: train one)")
    parser.add_argument("--files", type=int, default=60, help="Nottingham tunes to train on")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--pieces", type=int, default=48, help="pieces per setting")
    parser.add_argument("--number", type=int, default=4, help="windows per piece")
    parser.add_argument("--context", type=int, default=WINDOW // 2, help="known notes C")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--rounds", type=int, default=4, help="R of the resampled setting")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        run, seconds = (
            (args.run, 0.0) if args.run else train_run(Path(tmp), args.files, args.train_steps)
        )
        model = load_run(run, device="cpu").model
        length = model.config.length
        print(f"model: {run} (trained {seconds:.0f} s), L={length}, C={args.context}, "
              f"K={args.number}, {args.pieces} pieces, DDIM {args.steps} steps")  # fmt: skip
        print(f"{'resample':>8}  {'statistic':<18} {'seam':>7} {'interior':>9} "
              f"{'seam/interior':>14} {'seconds':>8}")  # fmt: skip
        for rounds in (1, args.rounds):
            start = time.perf_counter()
            pieces = generate_notes(
                model, n=args.pieces, number=args.number, context=args.context,
                steps=args.steps, seed=0, resample=rounds,
            )  # fmt: skip
            took = time.perf_counter() - start
            for name, (s, o, r) in seam_ratios(pieces, length, args.context).items():
                print(f"{rounds:>8}  {name:<18} {s:>7.3f} {o:>9.3f} {r:>14.2f} {took:>8.1f}")


if __name__ == "__main__":
    main()
