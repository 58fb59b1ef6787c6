"""Benchmark: ``midiforge train FOLDER`` at its defaults on a 92-file piano folder.

Target (issue: my folder → my model with a sensible budget): on a 2-core CPU the command
finishes within 15 minutes, and the trained run's held-out NLL on the folder's validation split
is below the untuned shipped model's (ratio before / after > 1).

The folder is POP909 songs 001-092 (piano arrangements), the first 92 by number. The run is the
plain command a musician types, ``midiforge train FOLDER --run-dir RUN``, in a subprocess whose
wall clock is timed (preparing the folder, fine-tuning the shipped model to its 10-minute
budget or early stopping, the memorization audit). Both models are then scored by
``midiforge.evaluate`` (:func:`midiforge.metrics.likelihood.run_likelihood`: every token of
every held-out file once) on the folder's prepared dataset: the untuned model through a copy
of the shipped run that points at that dataset.

Overlap with the shipped model's data: it trained on POP909 split by the same content hash and
ratios (docs/model-card.md, scripts/train_default.sh), so each song of the folder falls in the
same split both times. The folder's valid/test songs are songs the shipped model never trained
on (the script checks this from the hashes and prints the counts); most of the folder's train
songs were in the shipped model's training data already, so the fine-tune learns the folder's
style (piano pop, no style label) more than new songs.

    python bench/my_folder.py [--files 92] [--datasets ../shared/datasets] [--keep DIR]
                              [--time 30s]   (a quick check of the script, not the benchmark)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from midiforge.assets import DEFAULT_RUN_DIR
from midiforge.config import load_yaml, save_yaml
from midiforge.data.corpus import split_for_hash
from midiforge.metrics.evaluate import evaluate
from midiforge.training.logbook import read_result
from midiforge.training.settings import format_duration

TARGET_WALL_S = 15 * 60  # the "within 15 minutes"
SCORED = ("valid", "test")  # valid is the target; the run picked its best weights on it
SPLIT_OPTIONS = ("tracks", "programs", "drums", "max_note_beats", "max_gap_beats", "split")


def build_folder(datasets: Path, folder: Path, files: int) -> list[str]:
    """Copy POP909 songs 001..``files`` (one MIDI per song folder) into ``folder``."""
    folder.mkdir(parents=True)
    songs = [f"{i:03d}" for i in range(1, files + 1)]
    for song in songs:
        shutil.copy(datasets / "pop909" / song / f"{song}.mid", folder / f"{song}.mid")
    return songs


def shipped_overlap(dataset: Path) -> dict[str, dict[str, int]]:
    """Folder split → {shipped model's split of those songs: files}, from the content hashes."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    shipped = load_yaml(DEFAULT_RUN_DIR / "config.yaml")["dataset_options"]
    differ = [k for k in SPLIT_OPTIONS if shipped.get(k) != manifest["options"].get(k)]
    if differ:  # then the hashes or ratios differ and the counts below mean nothing
        print(f"warning: the folder was prepared with other {differ} than the shipped data")
    table: dict[str, dict[str, int]] = {}
    for record in manifest["files"]:
        if record["status"] == "kept":
            theirs = split_for_hash(record["hash"], shipped["split"])
            row = table.setdefault(record["split"], {})
            row[theirs] = row.get(theirs, 0) + 1
    return table


def untuned_run(dataset: Path, target: Path) -> Path:
    """The shipped run, copied, with its config pointing at ``dataset`` (for ``evaluate``)."""
    shutil.copytree(DEFAULT_RUN_DIR, target)
    config = load_yaml(target / "config.yaml")
    save_yaml({**config, "dataset": str(dataset.resolve())}, target / "config.yaml")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=92)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    parser.add_argument("--time", help="pass --time to train (a quick check; default: none)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="mf-my-folder-"))
    folder, run = work / "my_piano", work / "runs" / "mine"
    build_folder(args.datasets, folder, args.files)

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "midiforge", "train", str(folder), "--run-dir", str(run)]
    command += [] if args.time is None else ["--time", args.time]
    print("$", " ".join(command[2:]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"train failed with status {done.returncode}")
    last_line = done.stdout.strip().splitlines()[-1]
    result = read_result(run)

    dataset = run / "dataset"
    overlap = shipped_overlap(dataset)
    untuned = untuned_run(dataset, work / "untuned")
    before = {split: evaluate(untuned, split=split) for split in SCORED}
    after = {split: evaluate(run, split=split) for split in SCORED}

    splits = json.loads((dataset / "manifest.json").read_text())["splits"]
    sizes = ", ".join(f"{k} {v['files']} files / {v['tokens']:,} tokens" for k, v in splits.items())
    print(f"\n{args.files} POP909 songs (001-{args.files:03d}) prepared on the fly: {sizes}")
    for split, row in sorted(overlap.items()):
        print(f"  folder {split:5s} files by the shipped model's split: {row}")
    print(f"last line: {last_line}")
    print(
        f"wall time of `midiforge train`: {format_duration(wall)} ({wall:.0f} s; target < "
        f"{format_duration(TARGET_WALL_S)}); training loop {result['wall_seconds']:.0f} s; "
        f"stop reason: {result['reason']}; steps: {result['steps']}"
    )
    for split in SCORED:
        b, a = before[split]["nats"], after[split]["nats"]
        print(
            f"{split:5s} NLL (nats/token, {after[split]['count']:,} tokens): untuned shipped "
            f"{b:.3f} -> trained {a:.3f}; before / after = {b / a:.3f}x (target > 1)"
        )
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
