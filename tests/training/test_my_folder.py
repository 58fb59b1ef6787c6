"""My folder → my model: a small MIDI folder fine-tunes the shipped model, and it pays off;
at its defaults the folder trains to a time budget, and the last line says why it stopped.

Uses the default model that ships inside the package (``midiforge/assets/default``).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
import symusic
import yaml

from midiforge.assets import DEFAULT_RUN_DIR
from midiforge.training.run import SMALL_FOLDER_FILES, train
from midiforge.training.settings import FOLDER_EVAL_EVERY

from .conftest import cli, cli_env

FOLDER_FILES = 30  # the "30-file folder"
STEPS = 4  # the same number of optimizer steps for both runs
TRAIN = [
    f"train.steps={STEPS}",
    f"train.eval_every={STEPS}",
    "train.batch_size=4",
    "train.eval_batches=4",
    "train.warmup_steps=1",
    "train.seed=0",
]


@pytest.fixture(scope="module")
def folk_folder(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: 30 Nottingham tunes, two folders deep, no manifest."""
    folder = tmp_path_factory.mktemp("my_midi")
    tunes = sorted((datasets / "nottingham").glob("*.mid"))[-FOLDER_FILES:]
    for i, tune in enumerate(tunes):
        target = folder / f"set{i % 2}" / tune.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(tune.read_bytes())
    return folder


def best_valid_loss(run: Path) -> float:
    with (run / "metrics.csv").open() as fh:
        return min(float(r["loss"]) for r in csv.DictReader(fh) if r["split"] == "valid")


def test_small_folder_fine_tunes_the_default_beats_scratch_and_is_audited(
    folk_folder: Path, tmp_path: Path
) -> None:
    assert FOLDER_FILES < SMALL_FOLDER_FILES
    default_cfg = yaml.safe_load((DEFAULT_RUN_DIR / "config.yaml").read_text())

    tuned = train(folk_folder, overrides=TRAIN, run_dir=tmp_path / "tuned", device="cpu")
    cfg = yaml.safe_load((tuned / "config.yaml").read_text())
    assert cfg["init"] == "default"
    assert cfg["model"] == default_cfg["model"]
    assert cfg["model_config"] == default_cfg["model_config"]
    assert cfg["labels"] == default_cfg["labels"]  # the styles survive fine-tuning
    assert cfg["train"]["time"] is None  # steps given alone: no time budget, as before

    # the same architecture from scratch, on the same folder, for the same number of steps
    same_size = [
        f"model.{k}={v}"
        for k, v in default_cfg["model_config"].items()
        if k not in ("vocab_size", "n_labels")
    ]
    scratch = train(
        folk_folder,
        init="none",
        overrides=TRAIN + same_size,
        run_dir=tmp_path / "scratch",
        device="cpu",
    )
    assert yaml.safe_load((scratch / "config.yaml").read_text())["init"] is None
    assert best_valid_loss(tuned) < best_valid_loss(scratch)

    # the memorization audit ran on a few samples at the end of each folder run
    audit = json.loads((tuned / "memorization.json").read_text())
    assert len(audit["longest_runs"]) == len(audit["samples"]) == len(audit["flagged"]) >= 1
    assert all(r >= 0 for r in audit["longest_runs"])
    for sample in audit["samples"]:
        assert symusic.Score(sample).note_num() > 0


BUDGET = "4s"  # the folder's own default is 10m; the test keeps everything else


def test_folder_at_its_defaults_stops_at_its_time_budget_and_says_why(
    folk_folder: Path, tmp_path: Path
) -> None:
    run = tmp_path / "mine"
    small = ["--set", "train.batch_size=4", "--set", "train.eval_batches=2"]  # fast steps
    done = subprocess.run(
        cli("train", str(folk_folder), "--time", BUDGET, "--run-dir", str(run), *small),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    pattern = (
        r"stopped after \d+s at step (\d+) \(time budget 4s\): best validation loss "
        r"\d+\.\d{3} at step \d+ \(perplexity \d+\.\d{2}\); run in (.+)"
    )
    match = re.fullmatch(pattern, last)
    assert match and match[2] == str(run), last
    assert re.search(r"ETA \d+s \(time budget\)", done.stderr)  # the progress bar's ETA
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["init"] == "default"  # still fine-tunes the shipped model
    assert cfg["train"]["time"] == 4.0 and cfg["train"]["steps"] == 2000
    assert cfg["train"]["eval_every"] == FOLDER_EVAL_EVERY
    assert json.loads((run / "result.json").read_text())["reason"] == "time"
    assert (run / "memorization.json").is_file()  # the folder's audit still runs at the end
