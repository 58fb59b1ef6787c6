"""Weights and resumable checkpoints of a RUN dir: safetensors, ``state.pt``, RNG states.

Weights are stored only as safetensors, written atomically. Everything else needed for an
exact resume (optimizer, scheduler, step, every RNG state) goes to ``checkpoints/last/state.pt``
as plain tensors, lists and numbers, so it loads with ``torch.load(weights_only=True)`` and no
pickle of arbitrary objects is involved. Loading weights checks every tensor name and shape
against the model the config builds and names what differs.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from midiforge.errors import MidiforgeError
from midiforge.models.base import MidiModel
from midiforge.store.names import (
    LAST_DIR,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    STATE_FILE,
    WEIGHTS_FILE,
    state_path,
)

MAX_PROBLEMS_SHOWN = 3  # tensor mismatches named in one error message

# --------------------------------------------------------------------------- RNG states


def capture_rng(sampler: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG state as tensors and lists (``weights_only``-loadable)."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            np_pos,
            np_has_gauss,
            np_gauss,
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if sampler is not None:
        state["sampler"] = sampler.get_state()
    return state


def restore_rng(state: dict[str, Any], sampler: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(
        (
            np_name,
            np_keys.numpy().astype(np.uint32),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if sampler is not None and "sampler" in state:
        sampler.set_state(state["sampler"])


# --------------------------------------------------------------------------- weights


def _weights_metadata(model: MidiModel) -> dict[str, str]:
    return {
        "format": RUN_FORMAT,
        "format_version": str(RUN_FORMAT_VERSION),
        "model": type(model).name,
    }


def save_weights(model: MidiModel, path: str | Path) -> None:
    """Write ``model``'s weights to ``path`` atomically (temp file in the same folder + rename).

    ``save_model`` (not ``save_file``) so that tied weights (shared storage) are written once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_model(model, str(tmp), metadata=_weights_metadata(model))
    tmp.replace(path)


def load_weights(model: MidiModel, path: str | Path) -> None:
    """Load safetensors weights into ``model`` after checking every name and shape.

    The error names the first tensors that differ, so a config/weights mismatch is readable.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiforgeError(f"weights file not found: {path}")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = []
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if meta.get("model") and meta["model"] != type(model).name:
            raise MidiforgeError(
                f"{path} holds weights of model {meta['model']!r} but the config builds "
                f"{type(model).name!r}"
            )
        for key in fh.keys():  # noqa: SIM118  (safe_open has keys(), not __iter__)
            shape = tuple(fh.get_slice(key).get_shape())
            if key not in expected:
                problems.append(f"has tensor {key} which the model built from the config lacks")
            elif shape != expected[key]:
                problems.append(
                    f"has tensor {key} of shape {list(shape)} but the config builds "
                    f"{list(expected[key])}"
                )
    if problems:
        extra = len(problems) - MAX_PROBLEMS_SHOWN
        more = f" (and {extra} more)" if extra > 0 else ""
        raise MidiforgeError(f"{path} " + "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + more)
    missing, _ = load_model(model, str(path), strict=False)
    if missing:
        raise MidiforgeError(
            f"{path} lacks tensor(s) {', '.join(missing[:5])} that the config's model needs"
        )


# --------------------------------------------------------------------------- checkpoints/last


def save_checkpoint(run_dir: Path, model: MidiModel, state: dict[str, Any]) -> Path:
    """Write ``RUN/checkpoints/last/`` (weights + ``state.pt``) atomically.

    Both files are written into a temporary sibling folder which then replaces the old one, so a
    process killed at any moment leaves either the previous checkpoint or the new one, whole.
    """
    final = Path(run_dir) / LAST_DIR
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".last-", dir=final.parent))
    save_model(model, str(tmp / WEIGHTS_FILE), metadata=_weights_metadata(model))
    torch.save(state, tmp / STATE_FILE)
    old = final.parent / ".last-old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """``state.pt`` of the run's last checkpoint, loaded without unpickling arbitrary objects."""
    path = state_path(run_dir)
    if not path.is_file():
        raise MidiforgeError(
            f"{path} is missing: the run has no resumable checkpoint yet (it is written every "
            "train.save_every steps); start a new run instead of --resume"
        )
    return torch.load(path, map_location="cpu", weights_only=True)
