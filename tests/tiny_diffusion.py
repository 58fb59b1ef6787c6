"""A tiny diffusion config, real Nottingham tunes and real optimizer steps on one batch, shared
by the diffusion training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from symusic import Score

from midiforge.data import encode
from midiforge.models import registry
from midiforge.models.note_features import fit_scaler

TINY = {"length": 32, "channels": 16, "channel_mults": (1, 2), "kernel_sizes": (5, 3),
        "attention_heads": 2, "time_dim": 32, "n_labels": 2}  # fmt: skip


def tunes(datasets: Path, count: int = 4) -> list[np.ndarray]:
    """Note rows of the first ``count`` Ashover tunes of the Nottingham set."""
    files = sorted((datasets / "nottingham").glob("ashover*.mid"))[:count]
    return [encode.notes_from_score(Score(str(path))) for path in files]


def window_batch(pieces: list[np.ndarray], length: int, count: int = 16) -> dict:
    """Up to ``count`` disjoint windows of ``length`` notes, all labelled 0."""
    rows = [t[s : s + length] for t in pieces for s in range(0, len(t) - length + 1, length)]
    rows = rows[:count]
    return {"notes": torch.from_numpy(np.stack(rows)), "label": torch.zeros(len(rows))}


def fit_batch(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 15, lr: float = 3e-3
) -> tuple[float, float, dict[str, torch.Tensor]]:
    """The batch's loss before and after ``steps`` AdamW steps on it (the same timesteps, noise
    and label dropout each time it is measured), and the last step's loss terms."""

    def measured() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return float(model.loss(batch)["loss"])

    before = measured()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        out = model.loss(batch)
        out["loss"].backward()
        optimizer.step()
    return before, measured(), out


def tiny_model(datasets: Path, **options) -> tuple[torch.nn.Module, list[np.ndarray]]:
    """A tiny diffusion model (``TINY`` and ``options``) whose feature scaling is fitted on
    :func:`tunes`, labels ``a`` and ``b``; and those tunes."""
    pieces = tunes(datasets)
    torch.manual_seed(0)
    model = registry.build("diffusion", {**TINY, **options})
    scaler = fit_scaler(np.concatenate(pieces), encode.NOTE_FIELDS)
    model.load_data_state({"features": scaler.to_dict(), "labels": ["a", "b"]})
    return model, pieces


def train_then_eval_loss(model: torch.nn.Module, batch: dict, hook, seed: int) -> None:
    """The batch's loss once in training mode (seeded), once in evaluation without gradients,
    with ``hook`` (a registered forward hook's handle) removed afterwards: what the hook sees
    of each pass is what the tests read."""
    try:
        torch.manual_seed(seed)
        model.train()
        model.loss(batch)
        model.eval()
        with torch.no_grad():
            model.loss(batch)
    finally:
        hook.remove()
