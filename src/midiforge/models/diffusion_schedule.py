"""The noise process of a diffusion model: schedule, training target and samplers.

The denoiser knows nothing of what lives here, and this module knows nothing of the network:
the sampling loop is ``output = model(x_t, t)`` then ``x = scheduler.step(output, t, x)``, in
the manner of ``diffusers`` (``set_timesteps`` / ``step`` / ``add_noise``).

Notation (Ho et al. 2020, "DDPM"; Song et al. 2021, "DDIM"; Salimans & Ho 2022):

* ``β_t`` the noise variance added at step t, ``α_t = 1 − β_t``, ``ᾱ_t = ∏_{s≤t} α_s``;
* ``x_0`` clean data, ``ε ~ N(0, I)``, ``x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε``   (DDPM eq. 4);
* the network predicts either ``ε`` (DDPM eq. 11/14) or the velocity
  ``v = √ᾱ_t ε − √(1−ᾱ_t) x_0`` (Salimans & Ho 2022, §4 and appendix D).

Timesteps are 0-based (0..T−1), as in ``diffusers``; ``ᾱ_{−1} = 1`` is the clean end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from midiforge.errors import MidiforgeError, choice_error
from midiforge.models import limits

COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal 2021 eq. 17: keeps β_0 from being too small
MAX_BETA = 0.999  # clip of the cosine schedule near t = T, as in Nichol & Dhariwal 2021


@dataclass
class ScheduleConfig:
    """How noise is added during training; saved with the model so sampling matches it."""

    num_train_timesteps: int = 1000  # T, the number of noise levels trained on
    beta_schedule: Literal["linear", "cosine"] = "cosine"  # how β_t grows with t
    beta_start: float = 1e-4  # β_0 of the linear schedule (Ho et al. 2020 §4)
    beta_end: float = 0.02  # β_{T-1} of the linear schedule
    prediction: Literal["epsilon", "v"] = "v"  # what the network outputs
    clip_sample: float = 1.0  # bound on |x̂_0| while sampling (data lie in [-1, 1]); 0 = none

    def check(self, where: str = "") -> None:
        """Refuse values outside their ranges (see :mod:`midiforge.models.limits`)."""
        limits.check_int(where, "num_train_timesteps", self.num_train_timesteps, 2,
                         limits.MAX_TIMESTEPS)  # fmt: skip
        limits.check_float(where, "beta_start", self.beta_start, 0.0, MAX_BETA)
        limits.check_float(where, "beta_end", self.beta_end, 0.0, MAX_BETA)
        if self.beta_schedule == "linear" and not 0 < self.beta_start <= self.beta_end:
            name = limits.field_name(where, "beta_start")
            raise MidiforgeError(
                f"{name}: {self.beta_start} must be above 0 and at most beta_end={self.beta_end}"
            )
        limits.check_float(where, "clip_sample", self.clip_sample, 0.0, 1e6)


def make_betas(config: ScheduleConfig) -> np.ndarray:
    """β_t for t = 0..T−1 as float64."""
    steps = config.num_train_timesteps
    if steps < 2:
        raise MidiforgeError(f"num_train_timesteps: {steps} is too small; use at least 2")
    if config.beta_schedule == "linear":
        return np.linspace(config.beta_start, config.beta_end, steps, dtype=np.float64)
    if config.beta_schedule == "cosine":
        # Nichol & Dhariwal 2021 eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2)
        def f(t: np.ndarray) -> np.ndarray:
            return np.cos((t / steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

        t = np.arange(steps + 1, dtype=np.float64)
        abar = f(t) / f(np.zeros(1))
        return np.clip(1 - abar[1:] / abar[:-1], 0.0, MAX_BETA)
    raise choice_error("beta_schedule", config.beta_schedule, ["linear", "cosine"])


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator``'s device then moved."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


class NoiseSchedule:
    """The forward process q(x_t | x_0) and the training target; shared by both samplers."""

    def __init__(self, config: ScheduleConfig) -> None:
        if config.prediction not in ("epsilon", "v"):
            raise choice_error("prediction", config.prediction, ["epsilon", "v"])
        self.config = config
        betas = make_betas(config)
        self.betas = torch.tensor(betas, dtype=torch.float32)  # (T,)
        self.alphas_cumprod = torch.tensor(np.cumprod(1 - betas), dtype=torch.float32)  # ᾱ_t
        self.timesteps: torch.Tensor | None = None  # set by set_timesteps

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t broadcast to ``like`` (B, C, L); t < 0 gives ᾱ = 1 (clean data)."""
        t = torch.as_tensor(t, device=like.device).long().reshape(-1)
        table = self.alphas_cumprod.to(like.device)
        abar = torch.where(t >= 0, table[t.clamp_min(0)], torch.ones_like(t, dtype=table.dtype))
        return abar.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))  # (B, 1, 1)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_0) in closed form (DDPM eq. 4)."""
        abar = self._abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise  # (B, C, L)

    def renoise(self, x_s: torch.Tensor, noise: torch.Tensor, s: int, t: int) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_s) for s < t: the forward process from one noisy level to a
        noisier one, √(ᾱ_t/ᾱ_s) x_s + √(1 − ᾱ_t/ᾱ_s) ε (s = −1 is clean data, ᾱ = 1); the
        "jump back" of RePaint's resampling (Lugmayr et al. 2022)."""
        abar_s = self.alphas_cumprod[s].item() if s >= 0 else 1.0
        ratio = self.alphas_cumprod[t].item() / abar_s
        return math.sqrt(ratio) * x_s + math.sqrt(max(1 - ratio, 0.0)) * noise

    def training_target(
        self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """What the network learns to output: ε (DDPM eq. 14) or v (Salimans & Ho 2022)."""
        if self.config.prediction == "epsilon":
            return noise
        abar = self._abar(t, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0  # v = √ᾱ ε − √(1−ᾱ) x_0

    def split_prediction(
        self, output: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂_0, ε̂) from the network output; x̂_0 clipped to ``clip_sample`` when set.

        ε-prediction: x̂_0 = (x_t − √(1−ᾱ) ε̂)/√ᾱ (inverse of eq. 4). v-prediction:
        x̂_0 = √ᾱ x_t − √(1−ᾱ) v̂ and ε̂ = √ᾱ v̂ + √(1−ᾱ) x_t. After clipping x̂_0, ε̂ is
        recomputed from it so the two stay consistent (as ``diffusers`` does).
        """
        abar = self._abar(t, x_t)
        if self.config.prediction == "epsilon":
            x0 = (x_t - (1 - abar).sqrt() * output) / abar.sqrt()
        else:
            x0 = abar.sqrt() * x_t - (1 - abar).sqrt() * output
        bound = self.config.clip_sample
        if bound > 0:
            x0 = x0.clamp(-bound, bound)
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt().clamp_min(1e-8)
        return x0, eps

    def previous_timestep(self, t: int) -> int:
        """The timestep that follows ``t`` in the current sampling sequence (−1 at the end)."""
        if self.timesteps is None:
            raise MidiforgeError(
                "the scheduler has no timesteps: call set_timesteps(n) before step()"
            )
        steps = self.timesteps.tolist()
        i = steps.index(int(t))
        return steps[i + 1] if i + 1 < len(steps) else -1


class DDPMScheduler(NoiseSchedule):
    """Ancestral sampling through all T steps (Ho et al. 2020, Algorithm 2)."""

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        """DDPM walks every trained step; ``num_inference_steps`` must be T (or None)."""
        steps = self.num_train_timesteps
        if num_inference_steps not in (None, steps):
            raise MidiforgeError(
                f"steps: DDPM samples all {steps} trained steps, got {num_inference_steps}; "
                "use the DDIM sampler (steps=N) for fewer steps"
            )
        self.timesteps = torch.arange(steps - 1, -1, -1)

    def step(
        self,
        output: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step x_t → x_{t−1}; returns (x_{t−1}, x̂_0).

        The mean is DDPM eq. 11, μ = (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t, written through the
        posterior of eq. 7, μ̃ = √ᾱ_{t−1} β_t/(1−ᾱ_t) x̂_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t,
        which is the same thing but lets x̂_0 be clipped. The variance is σ_t² = β̃_t =
        (1−ᾱ_{t−1})/(1−ᾱ_t) β_t (§3.2); no noise is added at the last step.
        """
        t = int(t)
        x0, _ = self.split_prediction(output, torch.tensor([t]), x_t)
        abar_t = self.alphas_cumprod[t].item()
        abar_prev = self.alphas_cumprod[t - 1].item() if t > 0 else 1.0
        beta_t = self.betas[t].item()
        coef_x0 = math.sqrt(abar_prev) * beta_t / (1 - abar_t)
        coef_xt = math.sqrt(1 - beta_t) * (1 - abar_prev) / (1 - abar_t)
        mean = coef_x0 * x0 + coef_xt * x_t  # (B, C, L), eq. 7
        if t == 0:
            return mean, x0
        var = (1 - abar_prev) / (1 - abar_t) * beta_t
        return mean + math.sqrt(var) * _noise_like(x_t, generator), x0


class DDIMScheduler(NoiseSchedule):
    """Deterministic-or-not sampling on a subsequence of the trained steps (Song et al. 2021)."""

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Evenly spaced steps from T−1 down to 0 ("trailing" spacing: starts at pure noise)."""
        steps = self.num_train_timesteps
        if not 1 <= int(num_inference_steps) <= steps:
            raise MidiforgeError(
                f"steps: {num_inference_steps} is out of range; use 1..{steps} for DDIM"
            )
        grid = np.linspace(steps - 1, 0, int(num_inference_steps)).round().astype(np.int64)
        self.timesteps = torch.from_numpy(np.unique(grid)[::-1].copy())

    def step(
        self,
        output: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step t → t_prev; returns (x_{t_prev}, x̂_0).

        DDIM eq. 12: x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t z, with
        eq. 16: σ_t = η √((1−ᾱ_{t−1})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1}). η = 0 is deterministic;
        η = 1 over all steps is DDPM.
        """
        if eta < 0:
            raise MidiforgeError(f"eta: {eta} is negative; use 0 (deterministic) to 1 (DDPM)")
        t = int(t)
        prev = self.previous_timestep(t)
        x0, eps = self.split_prediction(output, torch.tensor([t]), x_t)
        abar_t = self.alphas_cumprod[t].item()
        abar_prev = self.alphas_cumprod[prev].item() if prev >= 0 else 1.0
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))
        direction = math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps  # "direction to x_t"
        x_prev = math.sqrt(abar_prev) * x0 + direction  # (B, C, L)
        if sigma > 0:
            x_prev = x_prev + sigma * _noise_like(x_t, generator)
        return x_prev, x0


SAMPLERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}


def make_scheduler(config: ScheduleConfig, sampler: str) -> DDPMScheduler | DDIMScheduler:
    """A fresh scheduler of the named kind over ``config``'s noise schedule."""
    if sampler not in SAMPLERS:
        raise choice_error("sampler", sampler, sorted(SAMPLERS))
    return SAMPLERS[sampler](config)
