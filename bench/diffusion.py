"""Benchmark: DDIM (50 steps) vs DDPM (all 1000 steps) on the same trained note diffusion model.

Targets (docs/benchmarks.md): DDIM ≥ 15× faster than DDPM, with the framewise self-similarity
(Mittal et al. 2021, pitch and duration overlap of adjacent 4-bar frames) within 0.05 of DDPM's.
Also reported: Mittal et al.'s Consistency of each sampler against held-out test pieces.

Without ``--run`` a small model is trained first on a Nottingham subset through the real
pipeline (``prepare`` → ``train``), so the script needs nothing but the shared datasets.

    python bench/diffusion.py [--run RUN] [--files 1034] [--train-steps 4000] [--pieces 24]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from midiforge import api
from midiforge.metrics import music, self_similarity
from midiforge.sampling.diffusion import generate_notes
from midiforge.schema import NOTE_FIELDS
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MIDIFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))
DDIM_STEPS = 50
SPEED_TARGET = 15.0  # DDIM must be this many times faster than DDPM
SIMILARITY_TOLERANCE = 0.05  # |DDIM − DDPM| framewise self-similarity
WINDOW = 64  # notes per window
MODEL = {"length": WINDOW, "channels": 32, "channel_mults": [1, 2, 4], "kernel_sizes": [7, 5, 3],
         "attention_layers": 4, "attention_heads": 4, "time_dim": 64,
         "schedule": {"num_train_timesteps": 1000, "prediction": "v"}}  # fmt: skip
TRAIN = {"window": WINDOW, "batch_size": 32, "lr": 1e-3, "warmup_steps": 50,
         "eval_every": 200, "save_every": 200, "patience": 0, "seed": 0}  # fmt: skip


def train_run(
    work: Path,
    files: int,
    steps: int,
    model: dict | None = None,
    train: dict | None = None,
    **prepare_options,
) -> tuple[Path, float]:
    """Prepare ``files`` Nottingham tunes and train a diffusion model (``model``/``train``:
    config sections, default this bench's); (run dir, seconds)."""
    model, train = model or MODEL, train or TRAIN
    src = work / "midi"
    src.mkdir()
    for path in sorted((DATASETS / "nottingham").glob("*.mid"))[:files]:
        shutil.copy(path, src / path.name)
    data = work / "data"
    api.prepare(src, data, jobs=2, quiet=True, **prepare_options)
    overrides = [f"model.{k}={v}" for k, v in model.items() if k != "schedule"]
    overrides += [f"model.schedule.{k}={v}" for k, v in model["schedule"].items()]
    overrides += [f"train.{k}={v}" for k, v in train.items()] + [f"train.steps={steps}"]
    start = time.perf_counter()
    run = api.train(data, model="diffusion", overrides=overrides, run_dir=work / "run",
                    device="cpu")  # fmt: skip
    return Path(run), time.perf_counter() - start


def reference_pieces(run_config: dict, n_notes: int) -> list[np.ndarray]:
    """Held-out test tunes cut into pieces of ``n_notes`` notes, as metric note arrays."""
    data = PreparedDataset(run_config["dataset"])
    notes = data.notes("test")
    fields = data.manifest["note_fields"]
    pieces = []
    for i in range(len(notes)):
        rows = np.asarray(notes[i])
        for start in range(0, len(rows) - n_notes + 1, n_notes):
            chunk = rows[start : start + n_notes].copy()
            chunk[:, fields.index("onset")] -= chunk[0, fields.index("onset")]
            pieces.append(music.notes_from_fields(chunk, fields))
    return pieces


def sample(model, steps: int | None, pieces: int, number: int) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    out = generate_notes(model, n=pieces, number=number, context=WINDOW // 2, steps=steps, seed=0)
    seconds = time.perf_counter() - start
    return [music.notes_from_fields(p, NOTE_FIELDS) for p in out], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained diffusion RUN dir (default: train one here)")
    parser.add_argument("--files", type=int, default=1034, help="Nottingham tunes to train on")
    parser.add_argument("--train-steps", type=int, default=4000, help="~10 min on 1 CPU thread")
    parser.add_argument("--pieces", type=int, default=24, help="pieces per sampler")
    parser.add_argument("--number", type=int, default=2, help="windows per piece")
    parser.add_argument("--work", help="a new folder to keep the dataset and run in")
    parser.add_argument("--threads", type=int, default=1, help="1 on a shared machine")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the trainer's thread count too
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-diffusion-") as tmp:
        if args.work:
            tmp = args.work
            Path(tmp).mkdir(parents=True, exist_ok=False)
        train_s = None
        run_dir = Path(args.run) if args.run else None
        if run_dir is None:
            run_dir, train_s = train_run(Path(tmp), args.files, args.train_steps)
        torch.set_num_threads(args.threads)
        loaded = load_run(run_dir, device="cpu")
        model = loaded.model
        n_notes = WINDOW + (WINDOW - WINDOW // 2) * (args.number - 1)
        reference = reference_pieces(loaded.config, n_notes)
        ddpm, ddpm_s = sample(model, None, args.pieces, args.number)
        ddim, ddim_s = sample(model, DDIM_STEPS, args.pieces, args.number)
        sims = {name: self_similarity.framewise_self_similarity(p) for name, p in
                (("ddpm", ddpm), ("ddim", ddim), ("test", reference))}  # fmt: skip
        cons = {name: self_similarity.consistency_variance(p, reference) for name, p in
                (("ddpm", ddpm), ("ddim", ddim))}  # fmt: skip
    if train_s is not None:
        print(f"trained {args.train_steps} steps on {args.files} tunes in {train_s:.0f} s")
    print(f"model: {model.num_parameters():,} parameters; {args.pieces} pieces of {n_notes} notes")
    speed = ddpm_s / ddim_s
    print(f"DDPM {model.config.schedule.num_train_timesteps} steps: {ddpm_s:.1f} s")
    print(f"DDIM {DDIM_STEPS} steps: {ddim_s:.1f} s")
    print(f"speed-up: {speed:.1f}x (target >= {SPEED_TARGET:.0f}x)")
    worst = 0.0
    for key in ("pitch", "duration"):
        a, b, t = (sims[s][key]["mean"] for s in ("ddpm", "ddim", "test"))
        worst = max(worst, abs(a - b))
        print(f"self-similarity {key}: DDPM {a:.3f}  DDIM {b:.3f}  |diff| {abs(a - b):.3f}  "
              f"(test pieces {t:.3f})")  # fmt: skip
        for name in ("ddpm", "ddim"):
            c = cons[name][key]
            print(f"  {name} vs test: consistency {c['consistency']:.3f}, "
                  f"variance {c['variance']:.3f}")  # fmt: skip
    ok = speed >= SPEED_TARGET and worst <= SIMILARITY_TOLERANCE
    print(f"targets {'met' if ok else 'NOT met'}: speed {speed:.1f}x, max |diff| {worst:.3f}")


if __name__ == "__main__":
    main()
