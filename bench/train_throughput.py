"""Training throughput: the one trainer against a bare PyTorch loop, and 1 thread against all.

Prepares 12 POP909 songs into a temporary dataset, then trains the same small LSTM on the same
windows three ways and prints tokens per second:

* ``bare``: a minimal loop (fetch windows, loss, backward, AdamW step), one torch thread;
* ``trainer``: :class:`midiforge.training.trainer.Trainer` (seeded window fetch, schedule,
  clipping, metrics.csv, checkpoints), one torch thread;
* ``trainer, all cores``: the same with one torch thread per core (the trainer's default).

Ratios printed: trainer / bare (the trainer's overhead; 1.0 = none) and all cores / 1 thread
(about 1.9 on an idle 2-core machine; far below 1 when other jobs already use the cores).
Run: ``python bench/train_throughput.py [--steps N]`` from the repository root.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

from midiforge.data.prepare import prepare
from midiforge.models import registry
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.training.run import make_windows
from midiforge.training.trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MIDIFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))
SONGS = [f"{i:03d}" for i in range(1, 13)]
MODEL = {"d_embed": 128, "d_hidden": 128, "n_layers": 2, "dropout": 0.1}
WARMUP_STEPS = 3  # untimed steps (first-call kernel set-up)


def bare_loop(data, cfg: TrainConfig, steps: int) -> float:
    """Tokens per second of the simplest correct loop over the same windows."""
    torch.manual_seed(cfg.seed)
    net = registry.build("lstm", {**MODEL, "vocab_size": data.vocab_size})
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    windows = make_windows(data, net, cfg, "train", train=True)
    tokens, start = 0, 0.0
    for step in range(steps + WARMUP_STEPS):
        if step == WARMUP_STEPS:
            tokens, start = 0, time.perf_counter()
        first = step * cfg.batch_size
        batch = default_collate([windows[i] for i in range(first, first + cfg.batch_size)])
        loss = net.loss(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(batch["mask"].sum())
    return tokens / (time.perf_counter() - start)


def trainer_loop(data, cfg: TrainConfig, run_dir: Path) -> float:
    """Tokens per second the trainer reports (mean of its logged intervals after warm-up)."""
    torch.manual_seed(cfg.seed)
    net = registry.build("lstm", {**MODEL, "vocab_size": data.vocab_size})
    windows = make_windows(data, net, cfg, "train", train=True)
    Trainer(net, cfg, windows, None, run_dir, device=torch.device("cpu")).fit()
    rows = (run_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()[1:]
    rates = [float(r.split(",")[-2]) for r in rows][WARMUP_STEPS:]
    return sum(rates) / len(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for song in SONGS:
            (src / f"{song}.mid").write_bytes(
                (DATASETS / "pop909" / song / f"{song}.mid").read_bytes()
            )
        prepare(src, Path(tmp) / "ds", quiet=True)
        data = PreparedDataset(Path(tmp) / "ds")
        cfg = TrainConfig(
            steps=args.steps + WARMUP_STEPS,
            batch_size=16,
            seq_len=128,
            log_every=1,
            save_every=10**9,
            eval_every=10**9,
            warmup_steps=0,
        )
        torch.set_num_threads(1)
        bare = bare_loop(data, cfg, args.steps)
        single = trainer_loop(data, cfg, Path(tmp) / "run_one")
        torch.set_num_threads(cores)
        full = trainer_loop(data, cfg, Path(tmp) / "run_all")
    print(f"bare loop, 1 thread:    {bare:10.0f} tokens/s")
    print(f"trainer,   1 thread:    {single:10.0f} tokens/s")
    print(f"trainer,   {cores} threads:   {full:10.0f} tokens/s")
    print(f"trainer / bare loop:   {single / bare:.2f}x")
    print(
        f"{cores} threads / 1 thread: {full / single:.2f}x  (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
