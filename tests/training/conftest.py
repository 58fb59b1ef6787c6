"""Fixtures of the trainer tests: one thread per process, tiny model and loop settings."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

# Small enough to train in well under a second per step on a shared 2-core CPU.
TINY_MODELS: dict[str, list[str]] = {
    "lstm": ["model.d_embed=32", "model.d_hidden=32", "model.n_layers=1", "model.dropout=0.0"],
    "gru": ["model.d_embed=32", "model.d_hidden=32", "model.n_layers=1", "model.dropout=0.0"],
    "transformer": [
        "model.d_model=32",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.d_ff=64",
        "model.max_seq_len=64",
        "model.max_rel=64",
        "model.dropout=0.0",
    ],
    "lstm-multihead": [
        "model.d_pitch=16",
        "model.d_hidden=32",
        "model.n_layers=1",
        "model.dropout=0.0",
        "model.separate_head_optimizers=true",
        "model.lr_scale_velocity=0.5",
    ],
}
TINY_TRAIN = [
    "train.batch_size=4",
    "train.seq_len=32",
    "train.window=32",
    "train.lr=3e-3",
    "train.warmup_steps=2",
    "train.log_every=1",
    "train.eval_batches=2",
    "train.num_workers=0",
]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """One torch thread (here and in subprocesses): exact, and fast on a shared machine."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def tiny(model: str, *extra: str, steps: int = 10) -> list[str]:
    """``--set`` overrides of a tiny ``model`` run of ``steps`` steps."""
    return [*TINY_MODELS.get(model, []), *TINY_TRAIN, f"train.steps={steps}", *extra]


def cli_env() -> dict[str, str]:
    """Environment of a ``python -m midiforge`` subprocess that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "midiforge", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
