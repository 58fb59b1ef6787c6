"""``checkpoints/last/state.pt``: loaded without running code, then checked field by field.

``torch.load(weights_only=True)`` unpickles only tensors, containers and plain values, so a
file that asks for anything else (a pickled object, which could run code) is refused: the
message says the file is unsafe or damaged and was not loaded, and never suggests loading it
another way. What loads is then checked for every field the trainer reads, with the field named
in the error, so a damaged or hand-edited file fails before training starts instead of inside
torch's optimizer.
"""

from __future__ import annotations

import math
import numbers
import pickle
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midiforge.errors import MidiforgeError

# fields of state.pt the trainer reads; others (added by newer versions) are left alone
REQUIRED = ("step", "optimizer", "scheduler", "best", "bad_evals", "elapsed", "rng")
_GLOBAL = re.compile(r"(?:Unsupported global|GLOBAL)\s*:?\s*(?:GLOBAL\s+)?([\w.]+)")


def _damaged(path: Path, what: str) -> MidiforgeError:
    return MidiforgeError(
        f"{path}: unsafe or damaged file, not loaded ({what}); resume from a good copy of the "
        "run or start a new run"
    )


def read_state(path: Path) -> dict[str, Any]:
    """``state.pt`` as plain values and tensors; a refusal names the file, never runs it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it meets
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        what = f"it refers to the Python object {found.group(1)}" if found else "not plain data"
        raise _damaged(path, f"{what}, which a checkpoint never holds") from None
    except Exception as exc:  # a truncated zip, garbage bytes: torch raises many kinds
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        what = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        raise _damaged(path, what) from None
    check_state(state, path)
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_state(state: Any, path: Path) -> None:
    """Every field the trainer reads has the type and range it needs."""
    if not isinstance(state, dict):
        raise _damaged(path, f"it holds a {type(state).__name__}, not a mapping")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise _damaged(path, f"field(s) {', '.join(missing)} missing")
    if not _is_int(state["step"]) or state["step"] < 0:
        raise _damaged(path, f"step is {state['step']!r}, not a whole number >= 0")
    if not _is_int(state["bad_evals"]) or state["bad_evals"] < 0:
        raise _damaged(path, f"bad_evals is {state['bad_evals']!r}")
    if not _is_real(state["elapsed"]) or state["elapsed"] < 0:
        raise _damaged(path, f"elapsed is {state['elapsed']!r}")
    if state["best"] is not None and not _is_real(state["best"]):
        raise _damaged(path, f"best is {state['best']!r}, not a finite loss or None")
    _check_optimizer(state["optimizer"], path)
    _check_scheduler(state["scheduler"], len(state["optimizer"]["param_groups"]), path)
    check_rng(state["rng"], path)


def _check_optimizer(opt: Any, path: Path) -> None:
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict):
        raise _damaged(path, "optimizer is not an optimizer state")
    groups = opt.get("param_groups")
    if not isinstance(groups, list) or not groups:
        raise _damaged(path, "optimizer.param_groups is not a list of groups")
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise _damaged(path, f"optimizer.param_groups[{i}] is not a parameter group")
        if not all(_is_int(p) for p in group["params"]):
            raise _damaged(path, f"optimizer.param_groups[{i}].params are not parameter ids")
        for key in ("lr", "weight_decay", "eps"):
            if key in group and not _is_real(group[key]):
                raise _damaged(path, f"optimizer.param_groups[{i}].{key} is {group[key]!r}")
    for pid, entry in opt["state"].items():
        if not isinstance(entry, dict) or not all(
            isinstance(v, (torch.Tensor, numbers.Number)) for v in entry.values()
        ):
            raise _damaged(path, f"optimizer.state[{pid!r}] is not a tensor mapping")


def _check_scheduler(sched: Any, n_groups: int, path: Path) -> None:
    if not isinstance(sched, dict) or not _is_int(sched.get("last_epoch")):
        raise _damaged(path, "scheduler is not a scheduler state")
    for key in ("base_lrs", "_last_lr"):
        values = sched.get(key, [0.0] * n_groups)
        if not isinstance(values, list) or len(values) != n_groups:
            raise _damaged(path, f"scheduler.{key} does not list {n_groups} learning rate(s)")
        if not all(_is_real(v) for v in values):
            raise _damaged(path, f"scheduler.{key} holds {values!r}")
    lambdas = sched.get("lr_lambdas")
    if not isinstance(lambdas, list) or len(lambdas) != n_groups:
        raise _damaged(path, "scheduler.lr_lambdas does not match the optimizer's groups")
    if not all(f is None or isinstance(f, dict) for f in lambdas):
        raise _damaged(path, "scheduler.lr_lambdas holds something other than states")


def check_rng(rng: Any, path: Path) -> None:
    """Each saved RNG state is one its generator accepts (tried on throw-away generators)."""
    if not isinstance(rng, dict) or not {"python", "numpy", "torch"} <= set(rng):
        raise _damaged(path, "rng does not hold the python, numpy and torch states")
    try:
        version, mt_state, gauss = rng["python"]
        random.Random().setstate((version, tuple(mt_state), gauss))
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.RandomState().set_state(
            (name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
        )
        if not isinstance(rng["torch"], torch.Tensor):
            raise TypeError("the torch state is not a tensor")
        torch.Generator().set_state(rng["torch"])
        cuda = rng.get("cuda", [])
        if not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) for t in cuda):
            raise TypeError("the cuda states are not tensors")
        if "sampler" in rng:
            torch.Generator().set_state(rng["sampler"])
    except (TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as exc:
        raise _damaged(path, f"rng: {exc}") from None


def check_fits(state: dict[str, Any], model: Any, path: Path) -> None:
    """The optimizer state was saved for ``model``: same groups, same parameter shapes."""
    groups = model.param_groups()
    saved = state["optimizer"]["param_groups"]
    sizes = [len(g["params"]) for g in groups]
    if [len(g["params"]) for g in saved] != sizes:
        raise _damaged(
            path,
            f"its optimizer has parameter groups of {[len(g['params']) for g in saved]} "
            f"tensors, the model built from config.yaml has {sizes}",
        )
    params = [p for g in groups for p in g["params"]]
    ids = [pid for g in saved for pid in g["params"]]
    for pid, param in zip(ids, params):
        entry = state["optimizer"]["state"].get(pid, {})
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                raise _damaged(
                    path,
                    f"optimizer.state[{pid}].{key} has shape {list(value.shape)}, the "
                    f"parameter has {list(param.shape)}",
                )
