"""Two CPU processes under torchrun (gloo DDP) train one model; rank 0 writes the run."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from midiforge.store.run_dir import load_run
from midiforge.training.run import train

from .conftest import cli_env, free_port, tiny

STEPS = 6


def test_two_process_ddp_run_completes(pop909_small, tmp_path):
    run = tmp_path / "ddp"
    sets = tiny("gru", "train.eval_every=3", "train.save_every=3", steps=STEPS)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "midiforge",
        "train",
        str(pop909_small),
        "--model",
        "gru",
        "--device",
        "cpu",
        "--run-dir",
        str(run),
        *[a for s in sets for a in ("--set", s)],
    ]
    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with (run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = [int(r["step"]) for r in rows if r["split"] == "train"]
    assert steps == list(range(1, STEPS + 1))  # one writer: rank 0, no duplicated rows
    assert len([r for r in rows if r["split"] == "valid"]) == 2
    # Each rank read its half of the global batch: the same windows one process reads with a
    # batch twice as large, so the averaged losses agree step by step.
    single = train(
        pop909_small,
        model="gru",
        overrides=[*sets, "train.batch_size=8"],
        run_dir=tmp_path / "single",
        device="cpu",
    )
    with (single / "metrics.csv").open(newline="") as fh:
        alone = [float(r["loss"]) for r in csv.DictReader(fh) if r["split"] == "train"]
    together = [float(r["loss"]) for r in rows if r["split"] == "train"]
    assert together == pytest.approx(alone, abs=1e-4)
    loaded = load_run(run, "last")
    assert int(torch.load(run / "checkpoints/last/state.pt", weights_only=True)["step"]) == STEPS
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
