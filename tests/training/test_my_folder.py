"""My folder → my model: a small MIDI folder fine-tunes the shipped model, and it pays off.

Uses the default model that ships inside the package (``midiforge/assets/default``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import symusic
import yaml

from midiforge.assets import DEFAULT_RUN_DIR
from midiforge.training.run import SMALL_FOLDER_FILES, train

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
