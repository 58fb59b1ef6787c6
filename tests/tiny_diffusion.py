"""Real optimizer steps on one batch, shared by the diffusion training tests."""

from __future__ import annotations

import torch


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
