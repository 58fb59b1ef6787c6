"""A run killed with SIGKILL, or stopped by its time budget, and resumed logs exactly the
losses of an uninterrupted run; the time budget's stop is named on the command's last line."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import time

import torch

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


BUDGET_STEPS = 300  # far more than a budget of BUDGET_S lets a tiny LSTM take
BUDGET_S = 0.5
BUDGET_EVAL_EVERY = 10
STOP_LINE = re.compile(
    r"^stopped after \d+s at step (\d+) \(time budget 3s\): best validation loss \d+\.\d{3} "
    r"at step (\d+) \(perplexity \d+\.\d{2}\); run in (.+)$"
)


def test_time_budget_stops_the_cli_run_and_says_so(pop909_small, tmp_path):
    sets = tiny("lstm", "train.eval_every=1000", steps=100_000)
    run = tmp_path / "run"
    done = subprocess.run(
        cli("train", str(pop909_small), "--model", "lstm", "--device", "cpu", "--time", "3s",
            "--run-dir", str(run), *[a for s in sets for a in ("--set", s)]),
        env=cli_env(),
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    match = STOP_LINE.match(last)
    assert match, last
    step, best_step, where = int(match[1]), int(match[2]), match[3]
    assert 0 < step < 100_000 and where == str(run)
    assert best_step == step  # the only validation: the one made when the budget ran out
    result = json.loads((run / "result.json").read_text())
    assert result["reason"] == "time" and result["steps"] == step
    assert 2.0 < result["wall_seconds"] < 3.0 + 30.0  # the last step, validation and save
    assert valid_losses(run)[-1][0] == step
    state = torch.load(run / "checkpoints" / "last" / "state.pt", weights_only=True)
    assert int(state["step"]) == step and state["best_step"] == step


def test_a_bad_time_is_a_one_line_error(pop909_small, tmp_path):
    done = subprocess.run(
        cli("train", str(pop909_small), "--time", "10 minutes", "--run-dir", str(tmp_path / "r")),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--time: '10 minutes'" in lines[0] and "1h30m" in lines[0], lines
    assert not (tmp_path / "r").exists()


def test_resume_after_a_time_budget_stop_continues_exactly(pop909_small, tmp_path):
    sets = tiny("lstm", "model.dropout=0.2", f"train.eval_every={BUDGET_EVAL_EVERY}")
    whole = train(
        pop909_small,
        model="lstm",
        overrides=sets,
        steps=BUDGET_STEPS,
        run_dir=tmp_path / "whole",
        device="cpu",
    )
    cut = train(
        pop909_small,
        model="lstm",
        overrides=sets,
        steps=BUDGET_STEPS,
        time=BUDGET_S,  # the Python API's keyword: seconds, or "10m"
        run_dir=tmp_path / "cut",
        device="cpu",
    )
    first = json.loads((cut / "result.json").read_text())
    stopped_at = first["steps"]
    assert first["reason"] == "time" and 0 < stopped_at < BUDGET_STEPS, first
    train(resume=cut, time="none", device="cpu")  # no budget now: on to the last step
    second = json.loads((cut / "result.json").read_text())
    assert second["reason"] == "steps" and second["steps"] == BUDGET_STEPS
    assert f"resumed at step {stopped_at}" in second["message"]
    assert train_losses(cut) == train_losses(whole)  # log_every=1: every step's loss, exactly
    extra = [] if stopped_at % BUDGET_EVAL_EVERY == 0 else [stopped_at]  # the stop's validation
    assert [s for s, _ in valid_losses(cut)] == sorted([s for s, _ in valid_losses(whole)] + extra)
    assert [v for v in valid_losses(cut) if v[0] not in extra] == valid_losses(whole)
