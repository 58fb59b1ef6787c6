"""The one training loop for every model family.

Optimizer (AdamW over ``model.param_groups()``), warm-up + cosine schedule, precision, gradient
clipping and accumulation, validation, early stopping, logging, progress and checkpoints live
here once; a model only maps a batch to a dict of losses (``docs/architecture.md``).

Exact resume. The windows of a step are a pure function of ``(seed, step)``: slot ``g`` of the
run reads training window ``g`` (the data layer draws window ``g`` from an RNG keyed by
``(seed, g)``) with the global RNGs seeded from ``(seed, g)``, so a window's crop and
augmentation depend neither on what ran before nor on DataLoader workers. The remaining
randomness (dropout) is carried by the RNG states saved in every checkpoint. A run killed after
a checkpoint and resumed logs the same losses as one that never stopped. Under ``torchrun`` each
rank reads its own slots of the same global batch.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from midiforge.config import to_dict
from midiforge.errors import MidiforgeError
from midiforge.models.base import MidiModel
from midiforge.store import checkpoint as ckpt
from midiforge.training import distributed
from midiforge.training.logbook import Logbook, plot_losses
from midiforge.training.settings import TrainConfig, check_config, lr_factor, resolve_precision

log = logging.getLogger(__name__)

PROGRESS_MIN_INTERVAL_S = 0.5  # seconds between progress-bar refreshes


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers, well spread (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class _SeededWindows(Dataset):
    """``dataset[index]`` with the global RNGs seeded from the slot, so random crops and
    augmentation depend only on ``(seed, step, micro, slot)``, also in DataLoader workers."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        slot_seed, index = key
        random.seed(slot_seed)
        np.random.seed(slot_seed % (2**32))
        torch.manual_seed(slot_seed)
        return self.dataset[index]


class StepBatches(Sampler):
    """Yields this rank's ``[(slot_seed, index), ...]`` for every micro-batch from a step on.

    Global slot ``g`` of micro-batch ``m`` of step ``s`` reads window
    ``((s * accumulate + m) * world + rank) * batch_size + i`` (modulo the number of windows):
    a fresh window per slot for a training set whose windows are random draws keyed by index
    (``TokenWindows``/``NoteWindows`` with ``train=True``), and a fixed cycle otherwise.
    """

    def __init__(self, n_windows: int, cfg: TrainConfig, info: distributed.Dist, start: int):
        self.n, self.cfg, self.info, self.start = n_windows, cfg, info, start

    def batch(self, step: int, micro: int) -> list[tuple[int, int]]:
        bs, world = self.cfg.batch_size, self.info.world_size
        first = ((step * self.cfg.accumulate + micro) * world + self.info.rank) * bs
        slots = range(first, first + bs)
        return [(_mix(self.cfg.seed, slot), slot % self.n) for slot in slots]

    def __iter__(self):
        for step in range(self.start, self.cfg.steps):
            for micro in range(self.cfg.accumulate):
                yield self.batch(step, micro)

    def __len__(self) -> int:
        return (self.cfg.steps - self.start) * self.cfg.accumulate


def windows_needed(cfg: TrainConfig, world_size: int) -> int:
    """Training windows a whole run reads (so a window set of this size never repeats)."""
    return cfg.steps * cfg.accumulate * cfg.batch_size * world_size


class _LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``, so DDP's forward hooks see the loss call."""

    def __init__(self, model: MidiModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.loss(batch)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Targets that count in the loss (the throughput unit: tokens or notes)."""
    mask = batch.get("mask")
    return int(mask.sum()) if mask is not None else int(next(iter(batch.values())).shape[0])


@dataclass
class TrainResult:
    """What a finished (or early-stopped) run reports."""

    steps: int  # optimizer steps completed
    best_valid_loss: float | None  # None when there was no validation split
    stopped_early: bool
    seconds: float


class Trainer:
    """Train ``model`` on ``train_set`` windows, validating on ``valid_set``, into ``run_dir``."""

    def __init__(
        self,
        model: MidiModel,
        cfg: TrainConfig,
        train_set: Dataset,
        valid_set: Dataset | None,
        run_dir: Path,
        *,
        device: torch.device,
        info: distributed.Dist | None = None,
    ) -> None:
        check_config(cfg)
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        self.info = info or distributed.Dist()
        self.model = model.to(device)
        self.train_set, self.valid_set = train_set, valid_set
        self.autocast = resolve_precision(cfg.precision, device)
        groups = []
        for group in model.param_groups():
            group = dict(group)
            group["lr"] = cfg.lr * float(group.get("lr_scale", 1.0))
            group.setdefault("weight_decay", cfg.weight_decay)
            groups.append(group)
        fused = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, cfg)
        )
        self.wrapped: nn.Module = _LossModule(self.model)
        if self.info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(
                self.wrapped, device_ids=ids, find_unused_parameters=True
            )
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logbook = Logbook(self.run_dir / "metrics.csv") if self.info.is_main else None
        self.step = 0
        self.best: float | None = None
        self.bad_evals = 0
        self.elapsed = 0.0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": ckpt.RUN_FORMAT_VERSION,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best": self.best,
            "bad_evals": self.bad_evals,
            "elapsed": self.elapsed,
            "train": to_dict(self.cfg),
            "rng": ckpt.capture_rng(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state.pt`` (call after the weights were loaded into the model)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best = int(state["step"]), state["best"]
        self.bad_evals, self.elapsed = int(state["bad_evals"]), float(state["elapsed"])
        ckpt.restore_rng(state["rng"])
        if self.logbook is not None:
            self.logbook.truncate_after(self.step)

    def _save(self) -> None:
        if self.info.is_main:
            ckpt.save_checkpoint(self.run_dir, self.model, self.state_dict())
        distributed.barrier(self.info)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean losses over ``eval_batches`` batches spread evenly over the validation windows."""
        assert self.valid_set is not None
        n = len(self.valid_set)  # type: ignore[arg-type]
        count = min(n, self.cfg.eval_batches * self.cfg.batch_size)
        picks = np.unique(np.linspace(0, n - 1, count).round().astype(np.int64))
        picks = picks[self.info.rank :: self.info.world_size]
        self.model.eval()
        sums: dict[str, float] = {}
        windows = 0
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # training's RNG stream is left untouched
            torch.manual_seed(self.cfg.seed)  # a loss that draws noise (diffusion) is repeatable
            for start in range(0, len(picks), self.cfg.batch_size):
                chunk = picks[start : start + self.cfg.batch_size]
                batch = _to(default_collate([self.valid_set[int(i)] for i in chunk]), self.device)
                with self._autocast():
                    losses = self.model.loss(batch)
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * len(chunk)
                windows += len(chunk)
        self.model.train()
        keys = sorted(sums) if sums else ["loss"]
        totals = torch.tensor([sums.get(k, 0.0) for k in keys] + [windows], dtype=torch.float64)
        distributed.all_reduce_sum(totals, self.info)
        return {k: float(totals[i] / max(1.0, float(totals[-1]))) for i, k in enumerate(keys)}

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    # ------------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        """Train from ``self.step`` to ``cfg.steps`` (or until early stopping)."""
        cfg, info = self.cfg, self.info
        n_windows = len(self.train_set)  # type: ignore[arg-type]
        if n_windows == 0:
            raise MidiforgeError("the training split has no windows; add files or lower seq_len")
        sampler = StepBatches(n_windows, cfg, info, self.step)
        loader = DataLoader(
            _SeededWindows(self.train_set),
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),  # not the global RNG
        )
        batches = iter(loader)
        has_valid = self.valid_set is not None and len(self.valid_set) > 0  # type: ignore[arg-type]
        progress = self._progress()
        sums: dict[str, float] = {}
        n_logged, tokens, interval_start = 0, 0, time.perf_counter()
        stopped_early = False
        self.model.train()
        while self.step < cfg.steps:
            step_start = time.perf_counter()
            step_losses: dict[str, float] = {}
            for micro in range(cfg.accumulate):
                batch = _to(next(batches), self.device)
                tokens += _batch_tokens(batch)
                sync = micro == cfg.accumulate - 1 or not info.enabled
                no_sync = contextlib.nullcontext() if sync else self.wrapped.no_sync()
                with no_sync, self._autocast():
                    losses = self.wrapped(batch)
                loss = losses["loss"]
                if not torch.isfinite(loss):
                    raise MidiforgeError(
                        f"the loss became {float(loss)} at step {self.step + 1}; lower train.lr "
                        f"(now {cfg.lr}) or set train.grad_clip (now {cfg.grad_clip})"
                    )
                with no_sync:
                    (loss / cfg.accumulate).backward()
                for key, value in losses.items():
                    step_losses[key] = (
                        step_losses.get(key, 0.0) + float(value.detach()) / cfg.accumulate
                    )
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
            self.elapsed += time.perf_counter() - step_start
            for key, value in step_losses.items():
                sums[key] = sums.get(key, 0.0) + value
            n_logged += 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{step_losses['loss']:.3f}", refresh=False)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                seconds = time.perf_counter() - interval_start
                keys = sorted(sums)
                totals = torch.tensor([sums[k] for k in keys] + [tokens], dtype=torch.float64)
                distributed.all_reduce_sum(totals, info)  # every rank's windows count
                rate = float(totals[-1]) / max(seconds, 1e-9)
                means = {
                    k: float(totals[i]) / n_logged / info.world_size for i, k in enumerate(keys)
                }
                self._write(self.step, "train", means, lr=lr, tokens_per_s=rate)
                if progress is not None:
                    progress.set_postfix(loss=f"{means['loss']:.3f}", tok_s=f"{rate:.0f}")
                sums, n_logged, tokens, interval_start = {}, 0, 0, time.perf_counter()
            if has_valid and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                valid = self.evaluate()
                self._write(self.step, "valid", valid, lr=lr)
                if self.best is None or valid["loss"] < self.best:
                    self.best, self.bad_evals = valid["loss"], 0
                    if info.is_main:
                        ckpt.save_weights(self.model, self.run_dir / ckpt.WEIGHTS_FILE)
                else:
                    self.bad_evals += 1
                log.info(
                    "step %d: valid loss %.4f (best %.4f)", self.step, valid["loss"], self.best
                )
                stopped_early = cfg.patience > 0 and self.bad_evals >= cfg.patience
            finished = self.step == cfg.steps or stopped_early
            if self.step % cfg.save_every == 0 or finished:
                if not has_valid and info.is_main:
                    ckpt.save_weights(self.model, self.run_dir / ckpt.WEIGHTS_FILE)
                self._save()
                if info.is_main:
                    plot_losses(self.run_dir / "metrics.csv", self.run_dir / "loss.png")
            if stopped_early:
                log.info(
                    "early stop at step %d: no better validation loss in %d evaluations",
                    self.step,
                    cfg.patience,
                )
                break
        if progress is not None:
            progress.close()
        return TrainResult(self.step, self.best, stopped_early, self.elapsed)

    def _write(self, step: int, split: str, values: dict[str, float], **extra: float) -> None:
        if self.logbook is not None:
            self.logbook.write(step, split, values, seconds=round(self.elapsed, 3), **extra)
        if split == "train":
            log.info("step %d: train loss %.4f", step, values["loss"])

    def _progress(self):
        if not self.info.is_main:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.cfg.steps,
            initial=self.step,
            desc="train",
            unit="step",
            mininterval=PROGRESS_MIN_INTERVAL_S,
            dynamic_ncols=True,
        )
