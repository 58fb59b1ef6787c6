"""Benchmark: fine-tuning the shipped model vs training from scratch on a 30-file folder.

Target (issue: my folder → my model): after the same number of steps, the fine-tuned run's
validation NLL is below the from-scratch run's. Both runs use the default model's architecture,
the same folder (30 Nottingham tunes, prepared on the fly, the same content-hash split), the
same steps, batch and seed; only the starting weights differ.

    python bench/finetune.py [--steps 60] [--files 30] [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from midiforge.assets import DEFAULT_RUN_DIR
from midiforge.data.prepare import prepare
from midiforge.training.run import train


def best_valid(run: Path) -> float:
    with (run / "metrics.csv").open() as fh:
        return min(float(r["loss"]) for r in csv.DictReader(fh) if r["split"] == "valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mf-finetune-"))
    folder = work / "my_midi"
    folder.mkdir()
    source = args.datasets / "nottingham"
    everything = prepare(source, work / "all", jobs=2, quiet=True, min_tokens=256, min_notes=32)
    unseen = [
        f["path"]
        for f in everything.manifest["files"]
        if f["status"] == "kept" and f["split"] in ("valid", "test")
    ][: args.files]
    for name in unseen:
        shutil.copy(source / name, folder / name)
    # every one of these tunes hashes outside the 0.8 train share; a 0.9/0.05/0.05 split puts
    # those in [0.8, 0.9) into train, the rest into valid and test
    data = work / "dataset"
    prepare(folder, data, jobs=2, quiet=True, min_tokens=256, min_notes=32, split=(0.9, 0.05, 0.05))
    common = [
        f"train.steps={args.steps}",
        f"train.eval_every={max(1, args.steps // 4)}",
        "train.batch_size=8",
        "train.eval_batches=8",
        "train.warmup_steps=5",
        "train.patience=0",
        "train.seed=0",
    ]
    default_cfg = yaml.safe_load((DEFAULT_RUN_DIR / "config.yaml").read_text())
    same_size = [
        f"model.{k}={v}"
        for k, v in default_cfg["model_config"].items()
        if k not in ("vocab_size", "n_labels")
    ]
    rows = {}
    for name, init, extra in (
        ("fine-tuned (--init default)", "default", []),
        ("from scratch (--init none)", "none", same_size),
    ):
        start = time.perf_counter()
        run = train(
            data,
            init=init,
            overrides=common + extra,
            run_dir=work / name.split()[0],
            device="cpu",
        )
        rows[name] = (best_valid(run), time.perf_counter() - start)
    print(
        f"{len(unseen)} Nottingham tunes the default model never trained on, "
        f"{args.steps} steps each, batch 8, "
        f"model d={default_cfg['model_config']['d_model']} "
        f"L={default_cfg['model_config']['n_layers']}"
    )
    for name, (nll, seconds) in rows.items():
        print(f"{name:30s} best valid NLL {nll:.3f} nats/token  ({seconds:.0f} s)")
    tuned, scratch = (v[0] for v in rows.values())
    print(f"scratch / fine-tuned NLL ratio: {scratch / tuned:.2f}x (target > 1)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
