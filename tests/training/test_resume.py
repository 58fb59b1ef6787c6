"""A run killed with SIGKILL and resumed logs exactly the losses of an uninterrupted run."""

from __future__ import annotations

import csv
import signal
import subprocess
import time

from midiforge.training.run import train

from .conftest import cli, cli_env, tiny

STEPS = 40
SAVE_EVERY = 4
POLL_S = 0.01  # seconds between looks for the first checkpoint
START_TIMEOUT_S = 120.0


def train_losses(run):
    with (run / "metrics.csv").open(newline="") as fh:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(fh) if r["split"] == "train"]


def valid_losses(run):
    with (run / "metrics.csv").open(newline="") as fh:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(fh) if r["split"] == "valid"]


def test_sigkill_then_resume_matches_an_uninterrupted_run(pop909_small, tmp_path):
    sets = tiny(
        "lstm",
        "model.dropout=0.2",  # dropout draws random numbers: their state must resume too
        "model.n_layers=2",
        "train.eval_every=8",
        f"train.save_every={SAVE_EVERY}",
        steps=STEPS,
    )
    args = [str(pop909_small), "--model", "lstm", "--device", "cpu"]
    args += [a for s in sets for a in ("--set", s)]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    train(pop909_small, model="lstm", overrides=sets, run_dir=whole, device="cpu")

    proc = subprocess.Popen(
        cli("train", *args, "--run-dir", str(broken)),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = broken / "checkpoints" / "last" / "state.pt"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = train_losses(broken)[-1][0] if (broken / "metrics.csv").exists() else 0
    assert SAVE_EVERY <= killed_at < STEPS, killed_at

    done = subprocess.run(
        cli("train", "--resume", str(broken), "--device", "cpu"),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = train_losses(whole)
    assert [s for s, _ in expected] == list(range(1, STEPS + 1))
    assert train_losses(broken) == expected  # the same numbers, written the same way
    assert valid_losses(broken) == valid_losses(whole)


def test_resume_without_a_checkpoint_says_so(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(
        "format: midiforge-run\nformat_version: 1\nmodel: lstm\nmodel_config: {}\n"
        "train: {}\ndataset: nowhere\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        cli("train", "--resume", str(tmp_path / "run")),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no resumable checkpoint" in done.stderr


def test_windows_do_not_depend_on_dataloader_workers(pop909_small, tmp_path):
    sets = tiny("lstm", "model.dropout=0.0", "train.eval_every=100", steps=3)
    runs = [
        train(
            pop909_small,
            model="lstm",
            overrides=[*sets, f"train.num_workers={workers}"],
            run_dir=tmp_path / f"workers{workers}",
            device="cpu",
        )
        for workers in (0, 2)
    ]
    assert train_losses(runs[0]) == train_losses(runs[1])
    assert len(train_losses(runs[0])) == 3
