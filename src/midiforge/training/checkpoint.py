"""Run-directory files: atomic weight and state checkpoints, RNG capture, and ``load_run``.

A RUN dir (see ``docs/architecture.md``) is self-describing: ``config.yaml`` names the model
family and its config, so :func:`load_run` rebuilds the model without any other input and
checks that the weights fit it, naming the tensor and the shapes when they do not.

Weights are stored only as safetensors. Everything else needed for an exact resume (optimizer,
scheduler, step, every RNG state) goes to ``state.pt`` as plain tensors, lists and numbers, so
it loads with ``torch.load(weights_only=True)`` and no pickle of arbitrary objects is involved.
"""

from __future__ import annotations

import json
import platform
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from midiforge.config import load_yaml, save_yaml, to_dict
from midiforge.errors import MidiforgeError, choice_error
from midiforge.models.base import MidiModel

RUN_FORMAT = "midiforge-run"
RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
TOKENIZER_FILE = "tokenizer.json"
DATA_STATE_FILE = "data_state.json"
LAST_DIR = Path("checkpoints") / "last"
SHARED_FILE_MODE = 0o644  # exported runs: rw-r--r--
SHARED_DIR_MODE = 0o755


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


# --------------------------------------------------------------------------- atomic writes


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


def save_checkpoint(run_dir: Path, model: MidiModel, state: dict[str, Any]) -> Path:
    """Write ``RUN/checkpoints/last/`` (weights + ``state.pt``) atomically.

    Both files are written into a temporary sibling folder which then replaces the old one, so a
    process killed at any moment leaves either the previous checkpoint or the new one, whole.
    """
    final = run_dir / LAST_DIR
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


def load_state(checkpoint_dir: Path) -> dict[str, Any]:
    """``state.pt`` of a checkpoint folder, loaded without unpickling arbitrary objects."""
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.is_file():
        raise MidiforgeError(
            f"{path} is missing: the run has no resumable checkpoint yet (it is written every "
            "train.save_every steps); start a new run instead of --resume"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


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
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise MidiforgeError(f"{path} " + "; ".join(problems[:3]) + more)
    missing, _ = load_model(model, str(path), strict=False)
    if missing:
        raise MidiforgeError(
            f"{path} lacks tensor(s) {', '.join(missing[:5])} that the config's model needs"
        )


# --------------------------------------------------------------------------- run files


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    for package in ("midiforge", "miditok", "symusic"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


def write_run_files(
    run_dir, net, model_name, cfg, data, data_path, labels, data_state, init=None
) -> None:
    """``config.yaml``, the tokenizer copy and ``data_state.json``: the run describes itself.

    ``init`` records what the weights started from (``"default"``, a RUN dir, or None).
    """
    tokenizer = data_path / TOKENIZER_FILE
    if tokenizer.is_file():
        shutil.copyfile(tokenizer, run_dir / TOKENIZER_FILE)
    if data_state:
        tmp = run_dir / f".{DATA_STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data_state, indent=1), encoding="utf-8")
        tmp.replace(run_dir / DATA_STATE_FILE)
    save_yaml(
        _plain(
            {
                "format": RUN_FORMAT,
                "format_version": RUN_FORMAT_VERSION,
                "model": model_name,
                "model_config": to_dict(net.config),
                "train": to_dict(cfg),
                "dataset": str(Path(data_path).resolve()),
                "init": None if init is None else str(init),
                "labels": list(labels),
                "tokenizer": dict(data.manifest.get("tokenizer") or {}),
                "dataset_options": dict(data.manifest.get("options") or {}),
                "versions": _versions(),
            }
        ),
        run_dir / CONFIG_FILE,
    )


def _plain(value: Any) -> Any:
    """Nested dicts/lists of builtins only, so ``yaml.safe_dump`` can write them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)


def update_train_section(run_dir: Path, cfg: Any) -> None:
    """Rewrite config.yaml's ``train`` section (``--resume`` may change e.g. ``steps``)."""
    saved = load_yaml(run_dir / CONFIG_FILE)
    saved["train"] = _plain(to_dict(cfg))
    save_yaml(saved, run_dir / CONFIG_FILE)


# --------------------------------------------------------------------------- load_run


@dataclass
class LoadedRun:
    """A trained model with everything needed to use it.

    ``config`` is the parsed ``config.yaml`` (keys ``model``, ``model_config``, ``train``,
    ``dataset``, ``labels``, ``tokenizer``, ``versions``); ``tokenizer`` is the MidiTok tokenizer
    (None for note models or datasets without ``tokenizer.json``).
    """

    model: MidiModel
    config: dict[str, Any]
    tokenizer: Any
    labels: list[str]
    path: Path
    data_state: dict[str, Any] = field(default_factory=dict)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.yaml``, checked for format and version."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise MidiforgeError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise MidiforgeError(
            f"{path} is missing: {run_dir} is not a midiforge run directory (train writes one)"
        )
    config = load_yaml(path)
    version = config.get("format_version", RUN_FORMAT_VERSION)
    if config.get("format", RUN_FORMAT) != RUN_FORMAT or version > RUN_FORMAT_VERSION:
        raise MidiforgeError(
            f"{path}: format {config.get('format')!r} version {version} is not readable by this "
            f"midiforge (reads {RUN_FORMAT!r} up to version {RUN_FORMAT_VERSION}); upgrade it"
        )
    for key in ("model", "model_config"):
        if key not in config:
            raise MidiforgeError(f"{path} lacks the key {key!r}; the run dir is incomplete")
    return config


def load_run(
    run_dir: str | Path, which: str = "best", *, device: str | torch.device = "cpu"
) -> LoadedRun:
    """Rebuild a trained model from a RUN dir, in eval mode on ``device``.

    Parameters
    ----------
    run_dir
        A folder written by ``midiforge train``.
    which
        ``"best"``: ``RUN/model.safetensors`` (lowest validation loss);
        ``"last"``: ``RUN/checkpoints/last/model.safetensors`` (latest step).
    """
    from midiforge.models import registry

    if which not in ("best", "last"):
        raise choice_error("which", which, ["best", "last"])
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = registry.build(config["model"], config["model_config"])
    weights = run_dir / WEIGHTS_FILE if which == "best" else run_dir / LAST_DIR / WEIGHTS_FILE
    load_weights(model, weights)
    data_state: dict[str, Any] = {}
    if (run_dir / DATA_STATE_FILE).is_file():
        data_state = json.loads((run_dir / DATA_STATE_FILE).read_text(encoding="utf-8"))
        model.load_data_state(data_state)
    tokenizer = None
    if (run_dir / TOKENIZER_FILE).is_file():
        from midiforge.data.encode import load_tokenizer

        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    model.to(device).eval()
    return LoadedRun(
        model=model,
        config=config,
        tokenizer=tokenizer,
        labels=list(config.get("labels") or []),
        path=run_dir,
        data_state=data_state,
    )


def export_run(
    run_dir: str | Path, target: str | Path, *, half: bool = True, dataset: str | None = None
) -> Path:
    """Copy what ``generate`` needs from a RUN dir into ``target``: a small, shippable run.

    The best weights (in float16 when ``half``: half the size, and loading casts them back to
    the model's float32), the config, the tokenizer and the data state; no optimizer state or
    logs. ``dataset`` replaces the config's dataset path (a path on the training machine) with
    a description for the people who receive the run. ``target`` is replaced whole, atomically.
    """
    run_dir, target = Path(run_dir), Path(target)
    loaded = load_run(run_dir)
    model = loaded.model.half() if half else loaded.model
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_weights(model, tmp / WEIGHTS_FILE)
        for name in (CONFIG_FILE, TOKENIZER_FILE, DATA_STATE_FILE):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        if dataset is not None:
            config = load_yaml(tmp / CONFIG_FILE)
            save_yaml({**config, "dataset": dataset}, tmp / CONFIG_FILE)
        for path in tmp.iterdir():  # readable by everyone: it may ship inside a package
            path.chmod(SHARED_FILE_MODE)
        tmp.chmod(SHARED_DIR_MODE)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
