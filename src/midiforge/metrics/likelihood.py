"""Held-out likelihood: exact per-token scoring of whole pieces, and the ``evaluate RUN`` numbers.

Two ways in:

* :func:`sequence_nll` scores every token of one piece with a token model's ``forward``, in
  strided windows where each target is counted once (a transformer never sees more context
  than it was trained with; a recurrent model reads the piece in one pass). The benchmarks
  build their per-token and per-frame figures on it.
* :func:`run_likelihood` evaluates a RUN dir on a split of its dataset through the model's own
  ``loss`` on ``TokenWindows(train=False)`` / ``NoteWindows(train=False)`` windows, weighting each
  batch by its counted targets so the average is per target, not per batch. Diffusion models
  have no likelihood here: their denoising loss is averaged over a fixed grid of timesteps
  with seeded noise, so two runs are compared on the same noise.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from midiforge.errors import MidiforgeError, choice_error
from midiforge.store.names import SPLITS, is_dataset

EVAL_BATCH_SIZE = 16  # windows per forward pass
DIFFUSION_TIMESTEPS = 10  # points of the fixed timestep grid
DIFFUSION_SEED = 0  # seeds the evaluation noise
LN2 = math.log(2.0)


@contextlib.contextmanager
def single_thread():
    """Run torch on one CPU thread inside the block, then restore the previous count.

    Scoring feeds a recurrent model one long piece at a time: every time step is a tiny matrix
    product, and synchronizing threads costs far more than it saves. Measured on the shared
    2-core CPU: a GRU over an 800-token piece took 26 s with 2 threads and 0.07 s with 1.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@single_thread()
@torch.no_grad()
def sequence_nll(
    model: Any, ids: np.ndarray, context: int | None = None, stride: int | None = None
) -> np.ndarray:
    """Negative log-likelihood in nats of every token after the first, shape ``(len(ids) - 1,)``.

    Parameters
    ----------
    model : a token model with ``forward(tokens (B, T)) -> (logits (B, T, V), cache)``.
    ids : the piece's token ids; ``ids[0]`` is context only (a BOS token).
    context : longest window the model reads (None: the whole piece at once).
    stride : how far consecutive windows move (default ``context // 2``); every target is scored
        by exactly one window, the first that reaches it, with as much context as possible.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n_targets = len(ids) - 1
    if n_targets <= 0:
        return np.zeros(0)
    length = n_targets if context is None else min(context, n_targets)
    stride = stride or max(length // 2, 1)
    starts = list(range(0, n_targets - length + 1, stride))
    if starts[-1] != n_targets - length:
        starts.append(n_targets - length)
    rows = torch.from_numpy(np.stack([ids[s : s + length + 1] for s in starts]))  # (W, L + 1)
    nll = np.zeros(n_targets)
    scored_until = 0  # targets [0, scored_until) are done
    for first in range(0, len(starts), EVAL_BATCH_SIZE):
        batch = rows[first : first + EVAL_BATCH_SIZE]  # (b, L + 1)
        logits, _ = model(batch[:, :-1])  # (b, L, V)
        ce = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none")
        for start, row in zip(starts[first : first + len(batch)], ce.numpy()):
            new_from = max(scored_until, start)
            nll[new_from : start + length] = row[new_from - start :]
            scored_until = start + length
    return nll


def summarize(total_nll: float, count: int) -> dict[str, float]:
    """Nats, bits and perplexity per counted unit from a summed NLL."""
    if count == 0:
        return {"nats": math.nan, "bits": math.nan, "perplexity": math.nan, "count": 0}
    nats = total_nll / count
    return {"nats": nats, "bits": nats / LN2, "perplexity": math.exp(nats), "count": count}


def _loader(windows: Any) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(windows, batch_size=EVAL_BATCH_SIZE, shuffle=False)


@torch.no_grad()
def _weighted_losses(model: Any, windows: Any) -> tuple[dict[str, float], int]:
    """Sum of each loss entry times the batch's counted targets, and the total count."""
    sums: dict[str, float] = {}
    count = 0
    for batch in _loader(windows):
        weight = int(batch["mask"].sum())
        if weight == 0:
            continue
        for key, value in model.loss(batch).items():
            sums[key] = sums.get(key, 0.0) + float(value) * weight
        count += weight
    return sums, count


@torch.no_grad()
def diffusion_loss(model: Any, windows: Any, timesteps: int = DIFFUSION_TIMESTEPS) -> float:
    """Masked denoising MSE averaged over a fixed grid of ``timesteps`` and seeded noise.

    Uses the model's public parts (``encode``, ``schedule.add_noise``,
    ``schedule.training_target``, the denoiser ``forward(x, t, label)``) with the same
    weighting as its training loss, but every window is scored at every grid timestep. A
    self-conditioned model is scored as it samples: on its own first estimate of ``x_0``; a
    key-conditioned one is told each window's scale, as in training.
    """
    n_train = int(model.schedule.num_train_timesteps)
    grid = np.linspace(0, n_train - 1, timesteps).round().astype(int)
    gen = torch.Generator().manual_seed(DIFFUSION_SEED)
    total, count = 0.0, 0
    for batch in _loader(windows):
        x0 = model.encode(batch["notes"].float())  # (B, F, L)
        b = x0.shape[0]
        mask = batch["mask"].bool()  # (B, L)
        x0 = torch.where(mask[:, None, :], x0, torch.zeros_like(x0))
        label = batch.get("label")
        key = model.window_keys(batch["notes"], mask)  # None unless key_condition
        estimating = model.config.self_condition
        for step in grid:
            t = torch.full((b,), int(step), dtype=torch.long)
            noise = torch.randn(x0.shape, generator=gen)
            x_t = model.schedule.add_noise(x0, noise, t)
            target = model.schedule.training_target(x0, noise, t)
            estimate = model.estimate(x_t, t, label, mask, key) if estimating else None
            err = (model(x_t, t, label, estimate, key) - target).pow(2)  # (B, F, L)
            total += float((err * mask[:, None, :]).sum() / err.shape[1])
            count += int(mask.sum())
    return total / count if count else math.nan


def run_likelihood(
    run_dir: str | Path,
    split: str = "valid",
    device: str = "cpu",
    *,
    diffusion_timesteps: int = DIFFUSION_TIMESTEPS,
    dataset: str | Path | None = None,
) -> dict:
    """Held-out loss of a RUN dir on ``split`` of the dataset it was trained on, or of
    ``dataset``: another one whose ids the run knows (the same notes prepared without the
    run's control tokens, whose ids are the first of its vocabulary: ``bench/per_note_nll.py``).

    Returns ``{"model", "split", "kind", ...}``: for token models ``nats``, ``bits``,
    ``perplexity`` per token and the token ``count``; for note models with several heads the
    weighted mean of every loss entry (``per_head``); for diffusion the ``denoising_loss`` at
    ``diffusion_timesteps`` evenly spaced timesteps.
    """
    from midiforge.data.dataset import NoteWindows, TokenWindows
    from midiforge.store.dataset_dir import PreparedDataset
    from midiforge.store.run_dir import load_run

    if split not in SPLITS:
        raise choice_error("--split", split, SPLITS)
    run = load_run(run_dir, device=device)
    dataset_path = Path(dataset if dataset is not None else run.config.get("dataset", ""))
    if not is_dataset(dataset_path):
        raise MidiforgeError(
            f"{run_dir}: its dataset {dataset_path} is gone; restore it or re-prepare it there"
            if dataset is None
            else f"dataset: {dataset_path} is not a prepared dataset (run prepare first)"
        )
    data = PreparedDataset(dataset_path)
    vocab = getattr(run.model.config, "vocab_size", None)
    if run.model.encoding == "tokens" and vocab is not None and data.vocab_size > vocab:
        raise MidiforgeError(
            f"dataset: {dataset_path} has {data.vocab_size} ids; the run {run_dir} knows {vocab}"
        )
    files = data.split_files(split)
    if files == 0:
        raise MidiforgeError(f"--split {split}: the dataset {dataset_path} has no {split} files")
    train_cfg = run.config.get("train") or {}
    model = run.model
    out: dict[str, Any] = {"model": run.config["model"], "split": split, "files": files}
    if model.encoding == "tokens":
        windows = TokenWindows(data, split, int(train_cfg.get("seq_len", 256)), train=False)
        sums, count = _weighted_losses(model, windows)
        out.update(kind="tokens", **summarize(sums.get("loss", math.nan) * 1.0, count))
        out["per_head"] = {k: v / count for k, v in sums.items() if k != "loss" and count}
        return out
    windows = NoteWindows(data, split, int(train_cfg.get("window", 64)), train=False)
    if run.config["model"] == "diffusion":
        loss = diffusion_loss(model, windows, diffusion_timesteps)
        out.update(kind="diffusion", denoising_loss=loss, timesteps=diffusion_timesteps)
        return out
    sums, count = _weighted_losses(model, windows)
    out.update(kind="notes", loss=sums.get("loss", math.nan) / max(count, 1), count=count)
    out["per_head"] = {k: v / count for k, v in sums.items() if k != "loss" and count}
    return out
