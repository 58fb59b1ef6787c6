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

Stopping. A session ends at ``train.steps``, when its time budget ``train.time`` would be
passed by one more step, or after ``patience`` validations without improvement, and the trainer
names which (:class:`TrainResult`). Validations fall on steps (every ``eval_every``), never on
the clock, so a resumed run validates where an uninterrupted one would. A run that stops for
time validates once more unless it just did, keeps the best weights and writes its checkpoint:
``--resume`` continues its steps exactly (``metrics.csv`` then holds the one extra validation
and a short training interval at the step where it stopped).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import asdict, dataclass, field
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
from midiforge.store.names import LOSS_PLOT_FILE, METRICS_FILE
from midiforge.training import distributed
from midiforge.training.logbook import Logbook, Progress, plot_losses, stop_message, write_result
from midiforge.training.settings import TrainConfig, check_config, lr_factor, resolve_precision

log = logging.getLogger(__name__)

STOP_STEPS, STOP_TIME, STOP_PATIENCE = "steps", "time", "patience"  # TrainResult.reason


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
    """What a session of a run reached and why it stopped; also written to ``RUN/result.json``."""

    steps: int  # optimizer steps completed, over all sessions
    best_valid_loss: float | None  # None when there was no validation split
    stopped_early: bool  # reason == "patience"
    seconds: float  # training-step seconds over all sessions (metrics.csv's ``seconds``)
    reason: str = STOP_STEPS  # what ended it: "steps", "time" (the budget) or "patience"
    best_step: int | None = None  # the step of best_valid_loss
    wall_seconds: float = 0.0  # this session's loop: steps, validations and checkpoints
    message: str = ""  # the sentence ``midiforge train`` prints last


@dataclass
class _Interval:
    """Training losses summed since the last ``metrics.csv`` row."""

    sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    tokens: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, losses: dict[str, float], tokens: int) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.steps += 1
        self.tokens += tokens


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
        self.logbook = Logbook(self.run_dir / METRICS_FILE) if self.info.is_main else None
        self.step = 0
        self.best: float | None = None
        self.best_step: int | None = None
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
            "best_step": self.best_step,
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
        self.best_step = state.get("best_step")  # absent in checkpoints of older versions
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
        """Train from ``self.step`` until ``cfg.steps``, the time budget or early stopping."""
        cfg, info = self.cfg, self.info
        batches = self._batches()
        has_valid = self.valid_set is not None and len(self.valid_set) > 0  # type: ignore[arg-type]
        start_step, started = self.step, time.perf_counter()
        progress = Progress(cfg.steps, self.step, cfg.time) if info.is_main else None
        self._interval, self._last_loss = _Interval(), None
        reason = STOP_STEPS
        self.model.train()
        while self.step < cfg.steps:
            step_start = time.perf_counter()
            losses, tokens, lr = self._train_step(batches)
            self.step += 1
            step_seconds = time.perf_counter() - step_start
            self.elapsed += step_seconds
            self._interval.add(losses, tokens)
            out_of_time = self._out_of_time(time.perf_counter() - started, step_seconds)
            last = self.step == cfg.steps or out_of_time
            rate = None
            if self.step % cfg.log_every == 0 or last:
                rate = self._log_interval(lr)
            if progress is not None:
                progress.update(self.step, time.perf_counter() - started, losses["loss"], rate)
            patience_spent = False
            if has_valid and (self.step % cfg.eval_every == 0 or last):  # once, also at a stop
                patience_spent = self._validate(lr)
            if self.step == cfg.steps:
                reason = STOP_STEPS
            elif out_of_time:
                reason = STOP_TIME
            elif patience_spent:
                reason = STOP_PATIENCE
            finished = last or patience_spent
            if self.step % cfg.save_every == 0 or finished:
                self._checkpoint(has_valid)
            if finished:
                break
        if progress is not None:
            progress.close()
        return self._finish(reason, start_step, time.perf_counter() - started)

    def _batches(self):
        """The training micro-batches from ``self.step`` on (see :class:`StepBatches`)."""
        n_windows = len(self.train_set)  # type: ignore[arg-type]
        if n_windows == 0:
            raise MidiforgeError("the training split has no windows; add files or lower seq_len")
        loader = DataLoader(
            _SeededWindows(self.train_set),
            batch_sampler=StepBatches(n_windows, self.cfg, self.info, self.step),
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.cfg.seed),  # not the global RNG
        )
        return iter(loader)

    def _train_step(self, batches) -> tuple[dict[str, float], int, float]:
        """One optimizer step over ``accumulate`` micro-batches: (mean losses, targets, lr)."""
        cfg, info = self.cfg, self.info
        step_losses: dict[str, float] = {}
        tokens = 0
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
                share = float(value.detach()) / cfg.accumulate
                step_losses[key] = step_losses.get(key, 0.0) + share
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return step_losses, tokens, lr

    def _out_of_time(self, used: float, step_seconds: float) -> bool:
        """Would one more step pass the time budget? Rank 0's clock decides for every rank."""
        if self.cfg.time is None:
            return False
        late = self.info.is_main and used + step_seconds > self.cfg.time
        flag = torch.tensor([1.0 if late else 0.0], dtype=torch.float64)
        distributed.all_reduce_sum(flag, self.info)
        return bool(flag.item() > 0)

    def _log_interval(self, lr: float) -> float:
        """One training row of ``metrics.csv`` (means over every rank); returns tokens/s."""
        interval, info = self._interval, self.info
        seconds = time.perf_counter() - interval.start
        keys = sorted(interval.sums)
        totals = torch.tensor(
            [interval.sums[k] for k in keys] + [interval.tokens], dtype=torch.float64
        )
        distributed.all_reduce_sum(totals, info)  # every rank's windows count
        rate = float(totals[-1]) / max(seconds, 1e-9)
        means = {k: float(totals[i]) / interval.steps / info.world_size for i, k in enumerate(keys)}
        self._write(self.step, "train", means, lr=lr, tokens_per_s=rate)
        self._interval, self._last_loss = _Interval(), means.get("loss")
        return rate

    def _validate(self, lr: float) -> bool:
        """Validate, keep the best weights; True when ``patience`` evaluations brought nothing."""
        valid = self.evaluate()
        self._write(self.step, "valid", valid, lr=lr)
        if self.best is None or valid["loss"] < self.best:
            self.best, self.best_step, self.bad_evals = valid["loss"], self.step, 0
            if self.info.is_main:
                ckpt.save_weights(self.model, self.run_dir / ckpt.WEIGHTS_FILE)
        else:
            self.bad_evals += 1
        log.info("step %d: valid loss %.4f (best %.4f)", self.step, valid["loss"], self.best)
        return self.cfg.patience > 0 and self.bad_evals >= self.cfg.patience

    def _checkpoint(self, has_valid: bool) -> None:
        if not has_valid and self.info.is_main:  # no validation: the latest weights are best
            ckpt.save_weights(self.model, self.run_dir / ckpt.WEIGHTS_FILE)
        self._save()
        if self.info.is_main:
            plot_losses(self.run_dir / METRICS_FILE, self.run_dir / LOSS_PLOT_FILE)

    def _finish(self, reason: str, start_step: int, wall: float) -> TrainResult:
        """The session's :class:`TrainResult`, logged and written to ``RUN/result.json``."""
        cfg = self.cfg
        message = stop_message(
            reason=reason,
            step=self.step,
            start_step=start_step,
            wall_s=wall,
            steps=cfg.steps,
            budget_s=cfg.time,
            patience=cfg.patience,
            best=self.best,
            best_step=self.best_step,
            last_train_loss=self._last_loss,
            per_token=self.model.encoding == "tokens",
        )
        result = TrainResult(
            steps=self.step,
            best_valid_loss=self.best,
            stopped_early=reason == STOP_PATIENCE,
            seconds=self.elapsed,
            reason=reason,
            best_step=self.best_step,
            wall_seconds=round(wall, 3),
            message=message,
        )
        log.info("%s", message)
        if self.info.is_main:
            write_result(self.run_dir, asdict(result))
        return result

    def _write(self, step: int, split: str, values: dict[str, float], **extra: float) -> None:
        if self.logbook is not None:
            self.logbook.write(step, split, values, seconds=round(self.elapsed, 3), **extra)
        if split == "train":
            log.info("step %d: train loss %.4f", step, values["loss"])
