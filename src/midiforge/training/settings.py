"""How to train: the ``train:`` config section, the lr schedule, precision, threads.

Everything here is resolved once before the loop starts, so a bad value fails with a message
naming the key before any data is read.

Three limits end a run, whichever comes first: ``steps``, the time budget ``time`` and early
stopping (``patience`` validations without improvement). The time budget is per session: every
``train`` call, ``--resume`` included, trains for at most ``time`` seconds from the start of its
loop (``--resume RUN --time 5m`` means five more minutes, not what was left of the first run's
budget; without ``--time`` a resumed run gets the budget saved in its config afresh).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from midiforge.config import from_dict
from midiforge.errors import MidiforgeError
from midiforge.training import distributed

SECONDS_PER = {"h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile("".join(f"(?:(?P<{u}>{_NUMBER}){u})?" for u in SECONDS_PER))
DURATION_FORMS = "seconds (600), or h/m/s parts (90s, 10m, 1h30m); none for no limit"
NO_LIMIT = ("none", "null", "off")

# A plain MIDI folder trained at its defaults: minutes, not the 2000 steps of a prepared
# dataset (~40 min of the default model on a 2-core CPU). Validation is scheduled by step, not
# by clock, so that it falls on the same steps in a resumed run and early stopping decides
# the same way; 25 steps is 30-75 s of the default model on that CPU, so early stopping
# (patience 5: 2.5-6 minutes without improvement) can act well inside the budget.
FOLDER_TIME_S = 600.0  # seconds: "about 10 minutes"
FOLDER_EVAL_EVERY = 25  # steps between validations
FOLDER_SAVE_EVERY = 100  # steps between checkpoints/last: a kill loses at most ~2-4 minutes
FOLDER_WARMUP_STEPS = 20  # a folder run fine-tunes a trained model: a short warm-up, most
# of the 10 minutes at the full rate (100 steps would be a third to a half of the budget here)


@dataclass
class TrainConfig:
    """How to train; the ``train:`` section of a config file and of ``RUN/config.yaml``."""

    steps: int = 2000  # optimizer steps
    time: float | None = None  # time budget in seconds per session (a train call); None: none
    batch_size: int = 16  # windows per micro-batch and process
    seq_len: int = 256  # tokens per window (token models); the model sees seq_len inputs
    window: int = 64  # notes per window (note models)
    lr: float = 3e-4  # peak learning rate, reached after warmup_steps
    weight_decay: float = 0.01  # AdamW decoupled weight decay (a param group may override it)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW moment decays
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1  # the cosine decays lr to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    accumulate: int = 1  # micro-batches summed into one optimizer step
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    eval_every: int = 200  # steps between validations
    eval_batches: int = 8  # validation batches (of batch_size windows, spread over the split)
    patience: int = 5  # stop after this many validations without improvement; 0 = never
    seed: int = 0  # seeds weights, window sampling and dropout
    num_workers: int = 0  # DataLoader worker processes for training windows
    log_every: int = 10  # steps between training rows in metrics.csv
    save_every: int = 200  # steps between checkpoints/last (and always at the end)
    balance: float = 0.0  # style labels drawn ∝ size^(1-balance): 0 as the corpus, 1 evenly
    fim: float = 0.0  # share of token windows in fill-in-the-middle order (prepare --fim)
    piece_start: float = 0.0  # share of training windows that start at their file's beginning
    augment: bool = False  # random transposition/velocity/tempo of training windows
    augment_pitch: int = 6  # largest transposition in semitones (±)
    augment_velocity: int = 2  # token models: largest velocity change in velocity bins (±)
    augment_velocity_scale: float = 0.1  # note models: largest relative velocity change (±)
    # note models: largest relative time stretch (±). The times are in beats, so this changes
    # the rhythm, not the tempo: it moved the multi-head LSTM's onsets off the grid, and its
    # shipped config sets 0 (model card, stop 30)
    augment_tempo: float = 0.1


def parse_duration(value: Any, name: str = "train.time") -> float | None:
    """Seconds from ``600``, ``"600"``, ``"90s"``, ``"10m"``, ``"1h30m"``; None for ``"none"``.

    ``name`` is what the error calls the value (``--time``, ``train.time``).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in NO_LIMIT):
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(_NUMBER, text):
            seconds = float(text)
        elif text and (match := _DURATION.fullmatch(text)):
            seconds = sum(float(v) * SECONDS_PER[u] for u, v in match.groupdict().items() if v)
    if seconds is None or not (math.isfinite(seconds) and seconds > 0):
        raise MidiforgeError(
            f"{name}: {value!r} is not a positive duration; accepted: {DURATION_FORMS}"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``"9m58s"``, ``"1h30m"``, ``"42s"``: the inverse of :func:`parse_duration`, to the second."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if not secs else f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m" if not secs else f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def folder_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``train:`` values for a plain MIDI folder: a 10-minute budget unless steps are given.

    ``train.steps`` given without ``train.time`` keeps the step-only behaviour of a prepared
    dataset; otherwise the folder defaults fill whatever the user left out.
    """
    if "steps" in values and "time" not in values:
        return values
    defaults = {
        "time": FOLDER_TIME_S,
        "eval_every": FOLDER_EVAL_EVERY,
        "save_every": FOLDER_SAVE_EVERY,
        "warmup_steps": FOLDER_WARMUP_STEPS,
    }
    return {**defaults, **values}


def load_train_config(values: dict[str, Any]) -> TrainConfig:
    """The ``train:`` section as a :class:`TrainConfig`; ``time`` may be written ``10m``."""
    values = dict(values)
    if isinstance(values.get("time"), str):
        values["time"] = parse_duration(values["time"], "train.time")
    return from_dict(TrainConfig, values, where="train")


UPPER_BOUNDS = {"batch_size": 65_536, "seq_len": 1 << 20, "window": 1 << 20,
                "accumulate": 65_536, "eval_batches": 65_536}  # fmt: skip
MAX_BATCH_POSITIONS = 1 << 22  # tokens (or notes) in one micro-batch: ~4 M
MAX_SEED = 2**63 - 1  # torch.manual_seed keeps a signed 64-bit integer


def check_config(cfg: TrainConfig) -> None:
    """Reject values that cannot train, naming the key and what is accepted."""
    positive = (
        "steps",
        "batch_size",
        "seq_len",
        "window",
        "accumulate",
        "eval_every",
        "eval_batches",
        "log_every",
        "save_every",
    )
    for name in positive:
        if getattr(cfg, name) < 1:
            raise MidiforgeError(f"train.{name}: must be at least 1, got {getattr(cfg, name)}")
    for name, most in UPPER_BOUNDS.items():  # a damaged config.yaml must not eat the memory
        if getattr(cfg, name) > most:
            raise MidiforgeError(f"train.{name}: must be at most {most}, got {getattr(cfg, name)}")
    if cfg.batch_size * max(cfg.seq_len, cfg.window) > MAX_BATCH_POSITIONS:
        raise MidiforgeError(
            f"train.batch_size × seq_len (or window) = {cfg.batch_size} × "
            f"{max(cfg.seq_len, cfg.window)} is over {MAX_BATCH_POSITIONS} positions per "
            "micro-batch; lower one and raise train.accumulate instead"
        )
    if not 0 <= cfg.seed <= MAX_SEED:
        raise MidiforgeError(f"train.seed: {cfg.seed} is not accepted; give 0 to {MAX_SEED}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise MidiforgeError(f"train.lr: must be positive, got {cfg.lr}")
    if not 0 <= cfg.min_lr_ratio <= 1:
        raise MidiforgeError(f"train.min_lr_ratio: must lie in 0..1, got {cfg.min_lr_ratio}")
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise MidiforgeError(f"train.betas: expected two values in [0, 1), got {cfg.betas}")
    for name in ("warmup_steps", "patience", "num_workers", "grad_clip", "weight_decay"):
        if getattr(cfg, name) < 0:
            raise MidiforgeError(f"train.{name}: must not be negative, got {getattr(cfg, name)}")
    if not (math.isfinite(cfg.balance) and 0 <= cfg.balance <= 1):
        raise MidiforgeError(f"train.balance: must lie in 0..1, got {cfg.balance}")
    if not (math.isfinite(cfg.fim) and 0 <= cfg.fim <= 1):
        raise MidiforgeError(f"train.fim: must lie in 0..1 (a share of windows), got {cfg.fim}")
    if not (math.isfinite(cfg.piece_start) and 0 <= cfg.piece_start <= 1):
        raise MidiforgeError(
            f"train.piece_start: must lie in 0..1 (a share of windows), got {cfg.piece_start}"
        )
    if cfg.time is not None and not (math.isfinite(cfg.time) and cfg.time > 0):
        raise MidiforgeError(
            f"train.time: must be a positive number of seconds, got {cfg.time}; "
            f"accepted: {DURATION_FORMS}"
        )


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak lr at ``step`` (0-based): linear warm-up, then cosine decay."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "bf16":
            raise MidiforgeError(
                "train.precision: bf16 is only used on CUDA; on CPU bf16 autocast is about 26x "
                "slower than fp32 and nn.LSTM fails under it. Use precision=auto or fp32, or "
                "train with --device cuda"
            )
        return None
    return torch.bfloat16


def set_cpu_threads(info: distributed.Dist) -> int:
    """Use every core this process may run on, shared among the processes on this machine.

    An explicit ``OMP_NUM_THREADS`` wins (``torchrun`` sets it, and on a machine shared with
    other jobs one thread per process avoids the stalls of oversubscribed cores).
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = max(1, int(os.environ["OMP_NUM_THREADS"]))
        torch.set_num_threads(threads)
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // info.local_world_size)
    torch.set_num_threads(threads)
    return threads
