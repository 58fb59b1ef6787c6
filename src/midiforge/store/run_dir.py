"""A RUN dir: ``config.yaml``, ``data_state.json``, loading a trained model, the shipped default.

A RUN dir (``docs/architecture.md``) is self-describing: ``config.yaml`` names the model family
and its config, so :func:`load_run` rebuilds the model without any other input, and
:mod:`midiforge.store.checkpoint` checks that the weights fit it. :func:`export_run` copies the
part of a run that ``generate`` needs into a small folder that can ship (the package's default
model, :func:`default_run`, is one).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from midiforge.assets import DEFAULT_RUN_DIR
from midiforge.config import load_yaml, save_yaml, to_dict
from midiforge.errors import MidiforgeError, choice_error
from midiforge.store.names import (
    CONFIG_FILE,
    DATA_STATE_FILE,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    TOKENIZER_FILE,
    config_path,
    data_state_path,
    has_tokenizer,
    is_run,
    tokenizer_path,
    weights_path,
)
from midiforge.store.tokenizer_file import load_tokenizer
from midiforge.store.versions import software_versions

if TYPE_CHECKING:  # torch is imported where a model is loaded, so listing runs stays cheap
    import torch

    from midiforge.models.base import MidiModel

SHARED_FILE_MODE = 0o644  # exported runs: rw-r--r--
SHARED_DIR_MODE = 0o755
WHICH = ("best", "last")

# --------------------------------------------------------------------------- config.yaml


def read_config_yaml(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.yaml`` as a mapping, unchecked (listings describe runs from it)."""
    run_dir = Path(run_dir)
    path = config_path(run_dir)
    if not run_dir.is_dir():
        raise MidiforgeError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise MidiforgeError(
            f"{path} is missing: {run_dir} is not a midiforge run directory (train writes one)"
        )
    try:
        return load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MidiforgeError(f"{path}: cannot read it ({reason}); the run dir is damaged") from None


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.yaml``, checked for format, version and the model keys."""
    path = config_path(run_dir)
    config = read_config_yaml(run_dir)
    version = config.get("format_version", RUN_FORMAT_VERSION)
    if config.get("format", RUN_FORMAT) != RUN_FORMAT or not isinstance(version, int):
        raise MidiforgeError(
            f"{path}: format {config.get('format')!r} version {version!r} is not a midiforge "
            f"run (expected {RUN_FORMAT!r})"
        )
    if version > RUN_FORMAT_VERSION:
        raise MidiforgeError(
            f"{path}: format {RUN_FORMAT!r} version {version} is not readable by this "
            f"midiforge (reads up to version {RUN_FORMAT_VERSION}); upgrade it"
        )
    for key in ("model", "model_config"):
        if key not in config:
            raise MidiforgeError(f"{path} lacks the key {key!r}; the run dir is incomplete")
    return config


def _plain(value: Any) -> Any:
    """Nested dicts/lists of builtins only, so ``yaml.safe_dump`` can write them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)


def write_run_files(
    run_dir: Path,
    net: MidiModel,
    model_name: str,
    cfg: Any,
    data: Any,
    data_path: Path,
    labels: list[str],
    data_state: dict[str, Any],
    init: str | Path | None = None,
) -> None:
    """``config.yaml``, the tokenizer copy and ``data_state.json``: the run describes itself.

    ``cfg`` is the train config (a dataclass), ``data`` the PreparedDataset at ``data_path``;
    ``init`` records what the weights started from (``"default"``, a RUN dir, or None).
    """
    if has_tokenizer(data_path):
        shutil.copyfile(tokenizer_path(data_path), tokenizer_path(run_dir))
    if data_state:
        path = data_state_path(run_dir)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data_state, indent=1), encoding="utf-8")
        tmp.replace(path)
    config = {
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
        "versions": software_versions(),
    }
    save_yaml(_plain(config), config_path(run_dir))


def update_train_section(run_dir: Path, cfg: Any) -> None:
    """Rewrite config.yaml's ``train`` section (``--resume`` may change e.g. ``steps``)."""
    saved = load_yaml(config_path(run_dir))
    saved["train"] = _plain(to_dict(cfg))
    save_yaml(saved, config_path(run_dir))


def read_data_state(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/data_state.json`` (what ``model.prepare_data`` returned), ``{}`` when absent."""
    path = data_state_path(run_dir)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MidiforgeError(f"{path}: cannot read it ({exc}); the run dir is damaged") from None


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


def load_run(
    run_dir: str | Path, which: str = "best", *, device: str | torch.device = "cpu"
) -> LoadedRun:
    """Rebuild a trained model from a RUN dir, in eval mode on ``device``.

    Parameters
    ----------
    run_dir
        A folder written by ``midiforge train`` (or :func:`export_run`).
    which
        ``"best"``: ``RUN/model.safetensors`` (lowest validation loss);
        ``"last"``: ``RUN/checkpoints/last/model.safetensors`` (latest step).
    device
        ``auto``, ``cpu``, ``cuda`` or a torch device (checked by
        :func:`midiforge.device.resolve_device`).
    """
    from midiforge.device import resolve_device
    from midiforge.models import registry
    from midiforge.store.checkpoint import load_weights

    if which not in WHICH:
        raise choice_error("which", which, WHICH)
    dev = resolve_device(device)
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = registry.build(config["model"], config["model_config"])
    load_weights(model, weights_path(run_dir, which))
    data_state = read_data_state(run_dir)
    if data_state:
        model.load_data_state(data_state)
    tokenizer = load_tokenizer(tokenizer_path(run_dir)) if has_tokenizer(run_dir) else None
    model.to(dev).eval()
    return LoadedRun(
        model=model,
        config=config,
        tokenizer=tokenizer,
        labels=list(config.get("labels") or []),
        path=run_dir,
        data_state=data_state,
    )


def default_run() -> Path:
    """The shipped default model: a small run dir inside the package (see docs/model-card.md)."""
    path = DEFAULT_RUN_DIR
    if not is_run(path):
        raise MidiforgeError(
            f"no run given and the default model is missing from {path}; reinstall "
            "midiforge or pass a RUN directory written by `midiforge train`"
        )
    return path


def export_run(
    run_dir: str | Path, target: str | Path, *, half: bool = True, dataset: str | None = None
) -> Path:
    """Copy what ``generate`` needs from a RUN dir into ``target``: a small, shippable run.

    The best weights (in float16 when ``half``: half the size, and loading casts them back to
    the model's float32), the config, the tokenizer and the data state; no optimizer state or
    logs. ``dataset`` replaces the config's dataset path (a path on the training machine) with
    a description for the people who receive the run. ``target`` is replaced whole, atomically.
    """
    from midiforge.store.checkpoint import save_weights

    run_dir, target = Path(run_dir), Path(target)
    loaded = load_run(run_dir)
    model = loaded.model.half() if half else loaded.model
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_weights(model, weights_path(tmp))
        for name in (CONFIG_FILE, TOKENIZER_FILE, DATA_STATE_FILE):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        if dataset is not None:
            config = load_yaml(config_path(tmp))
            save_yaml({**config, "dataset": dataset}, config_path(tmp))
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
