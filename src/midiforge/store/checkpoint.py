"""Weights and resumable checkpoints of a RUN dir: safetensors, ``state.pt``, RNG states.

Weights are stored only as safetensors, written atomically. Everything else needed for an
exact resume (optimizer, scheduler, step, every RNG state) goes to ``checkpoints/last/state.pt``
as plain tensors, lists and numbers, so it loads with ``torch.load(weights_only=True)`` and no
pickle of arbitrary objects is involved (:mod:`midiforge.store.state_file` checks it). Loading
weights reads the safetensors header first (:mod:`midiforge.store.weights_file`), checks every
tensor name, shape and dtype against the model the config builds and names what differs.

A checkpoint is written whole into a temporary folder and then swapped in with two renames
(``last`` → ``.last-old``, temporary → ``last``), so whatever moment a process dies at, either
``last`` or ``.last-old`` holds a complete checkpoint; :func:`last_checkpoint` finds it. A
full disk fails the write, removes the temporary folder and leaves the previous checkpoint.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from midiforge.errors import MidiforgeError, naming
from midiforge.models.base import MidiModel
from midiforge.store.atomic import (
    TEMP_SUFFIX,
    atomic_path,
    name_destination,
    os_error_of,
    remove_stale,
    write_with,
)
from midiforge.store.names import (
    LAST_DIR,
    LAST_OLD_DIR,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    STATE_FILE,
    WEIGHTS_FILE,
)
from midiforge.store.state_file import check_fits, read_state
from midiforge.store.weights_file import FLOAT_DTYPES, read_header

log = logging.getLogger(__name__)

MAX_PROBLEMS_SHOWN = 3  # tensor mismatches named in one error message
NEW_PREFIX = ".last-new."  # checkpoints/.last-new.{pid}.tmp while a checkpoint is written

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


def _save_model(model: MidiModel, path: Path) -> None:
    """``save_model`` (not ``save_file``, so tied weights are written once), with a full disk
    or a read-only folder raised as the OSError it is."""
    try:
        save_model(model, str(path), metadata=_weights_metadata(model))
    except Exception as exc:
        error = os_error_of(exc, path)
        if error is None:
            raise
        raise error from None


def save_weights(model: MidiModel, path: str | Path) -> None:
    """Write ``model``'s weights to ``path`` atomically (temp file in the same folder + rename)."""
    with atomic_path(path) as tmp:
        _save_model(model, tmp)


def _problems(path: Path, model: MidiModel) -> list[str]:
    """What differs between the file's tensors and the model's (names, shapes, dtypes)."""
    entries, meta = read_header(path)
    if meta.get("model") and meta["model"] != type(model).name:
        raise MidiforgeError(
            f"{path} holds weights of model {meta['model']!r} but the config builds "
            f"{type(model).name!r}"
        )
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = []
    for key, entry in entries.items():
        if key not in expected:
            problems.append(f"has tensor {key} which the model built from the config lacks")
        elif entry.shape != expected[key]:
            problems.append(
                f"has tensor {key} of shape {list(entry.shape)} but the config builds "
                f"{list(expected[key])}"
            )
        elif entry.dtype not in FLOAT_DTYPES:
            problems.append(f"has tensor {key} of dtype {entry.dtype}, not a float type")
    return problems


def load_weights(model: MidiModel, path: str | Path) -> None:
    """Load safetensors weights into ``model`` after checking every name, shape and dtype.

    The error names the first tensors that differ, so a config/weights mismatch is readable; a
    truncated or garbage file, or weights that are not finite numbers, are named as damaged.
    """
    path = Path(path)
    problems = _problems(path, model)
    if problems:
        extra = len(problems) - MAX_PROBLEMS_SHOWN
        more = f" (and {extra} more)" if extra > 0 else ""
        raise MidiforgeError(f"{path} " + "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + more)
    try:
        missing, _ = load_model(model, str(path), strict=False)
    except Exception as exc:  # the header was fine; the library found something else
        raise MidiforgeError(f"{path}: damaged weights file, not loaded ({exc})") from None
    if missing:
        raise MidiforgeError(
            f"{path} lacks tensor(s) {', '.join(missing[:5])} that the config's model needs"
        )
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MidiforgeError(
                f"{path}: damaged weights file (tensor {name} holds NaN or infinite values); "
                "restore it or train the run again"
            )


def load_weights_grown(model: MidiModel, path: str | Path, old_vocab: int) -> list[str]:
    """Load weights trained on a vocabulary of ``old_vocab`` ids into a model with more ids.

    Fine-tuning with added tokens (``prepare --controls`` or ``--fim`` over a run's tokenizer)
    keeps every trained row: a tensor whose first dimension is ``old_vocab`` in the file and
    larger in the model (the token embedding, the output head) gets the file's rows first and
    keeps the model's fresh initialisation for the new ids. Every other tensor must match as
    :func:`load_weights` checks. Returns the names of the grown tensors.
    """
    from safetensors.torch import load_file

    path = Path(path)
    _problems(path, model)  # raises for another model's weights; shapes are checked here
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    grown, problems = [], []
    entries, _ = read_header(path)
    for key, entry in entries.items():
        want = expected.get(key)
        if want is None or tuple(entry.shape) == want:
            continue
        if (
            len(want) == len(entry.shape)
            and entry.shape[0] == old_vocab < want[0]
            and (tuple(entry.shape[1:]) == want[1:])
        ):
            grown.append(key)
        else:
            problems.append(f"tensor {key}: file {list(entry.shape)}, model {list(want)}")
    if problems or not grown:
        raise MidiforgeError(
            f"{path}: cannot grow these weights to the dataset's vocabulary ("
            + ("; ".join(problems[:MAX_PROBLEMS_SHOWN]) or "no tensor has the old vocabulary")
            + ")"
        )
    tensors = load_file(str(path))
    state = model.state_dict()
    with torch.no_grad():
        for key, tensor in tensors.items():
            if key not in state:
                raise MidiforgeError(f"{path} has tensor {key} which the model lacks")
            if key in grown:
                state[key][:old_vocab].copy_(tensor)
            else:
                state[key].copy_(tensor)
    loaded = {state[k].data_ptr() for k in tensors}  # a tied tensor is saved once
    missing = sorted(k for k in set(state) - set(tensors) if state[k].data_ptr() not in loaded)
    if missing:
        raise MidiforgeError(f"{path} lacks tensor(s) {', '.join(missing[:5])} the model needs")
    return grown


# --------------------------------------------------------------------------- checkpoints/last


def last_checkpoint(run_dir: str | Path, *, repair: bool = False) -> Path:
    """The folder of the run's last complete checkpoint (``checkpoints/last``, or None-like).

    When a process died between the two renames of a checkpoint write, only the previous
    checkpoint, ``checkpoints/.last-old``, is left: it is returned, and with ``repair`` it is
    renamed back to ``checkpoints/last`` first. The path returned may not exist (no checkpoint).
    """
    run_dir = Path(run_dir)
    final, old = run_dir / LAST_DIR, run_dir / LAST_OLD_DIR
    if final.is_dir() or not old.is_dir():
        return final
    if not repair:
        return old
    log.warning("%s: the last checkpoint write was interrupted; using the one before it", run_dir)
    with naming(old):
        old.rename(final)
    return final


def save_checkpoint(run_dir: Path, model: MidiModel, state: dict[str, Any]) -> Path:
    """Write ``RUN/checkpoints/last/`` (weights + ``state.pt``) atomically.

    Both files are written into a temporary sibling folder which then replaces the old one, so a
    process killed at any moment leaves either the previous checkpoint or the new one, whole,
    and a failed write (a full disk) leaves the previous one and no temporary files.
    """
    final = Path(run_dir) / LAST_DIR
    old = Path(run_dir) / LAST_OLD_DIR
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent, NEW_PREFIX)
    tmp = parent / f"{NEW_PREFIX}{os.getpid()}{TEMP_SUFFIX}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        _save_model(model, tmp / WEIGHTS_FILE)
        write_with(tmp / STATE_FILE, lambda fh: torch.save(state, fh))
        if final.is_dir():  # else .last-old, if there, is the only good one: keep it for now
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            name_destination(exc, tmp, final)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """``state.pt`` of the run's last checkpoint, loaded without unpickling arbitrary objects.

    Picks up the previous checkpoint when the last write was interrupted between its renames
    (see :func:`last_checkpoint`); every field is checked (:mod:`midiforge.store.state_file`).
    """
    path = last_checkpoint(run_dir, repair=True) / STATE_FILE
    if not path.is_file():
        raise MidiforgeError(
            f"{path} is missing: the run has no resumable checkpoint yet (it is written every "
            "train.save_every steps); start a new run instead of --resume"
        )
    return read_state(path)


def check_state_fits(state: dict[str, Any], model: MidiModel, run_dir: str | Path) -> None:
    """The checkpoint's optimizer state belongs to ``model`` (same groups and shapes)."""
    check_fits(state, model, last_checkpoint(run_dir) / STATE_FILE)
