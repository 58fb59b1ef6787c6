"""A RUN dir: ``config.yaml``, ``data_state.json``, loading a trained model, the shipped default.

A RUN dir (``docs/architecture.md``) is self-describing: ``config.yaml`` names the model family
and its config, so :func:`load_run` rebuilds the model without any other input, and
:mod:`midiforge.store.checkpoint` checks that the weights fit it. :func:`export_run` copies the
part of a run that ``generate`` needs into a small folder that can ship (the package's default
model, :func:`default_run`, is one).

Everything read from a RUN dir is checked before it is used, and every error names the file
and the field: ``config.yaml``'s structure and its model section (types, ranges and the size
of the model it builds, through :func:`midiforge.models.registry.checked_config`), the weights
(:mod:`midiforge.store.checkpoint`), ``tokenizer.json`` and ``data_state.json``. Every file is
written atomically (:mod:`midiforge.store.atomic`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from midiforge.assets import DEFAULT_MODEL, SHIPPED
from midiforge.config import load_yaml, to_dict
from midiforge.errors import MidiforgeError, choice_error
from midiforge.schema import ALL_STYLES
from midiforge.store import atomic
from midiforge.store.names import (
    CONFIG_FILE,
    DATA_STATE_FILE,
    LOSS_PLOT_FILE,
    METRICS_FILE,
    PREPARED_SUBDIR,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    TOKENIZER_FILE,
    TRAIN_LOG_FILE,
    WEIGHTS_FILE,
    can_resume,
    config_path,
    data_state_path,
    has_tokenizer,
    is_run,
    tokenizer_path,
    weights_path,
)
from midiforge.store.tokenizer_file import load_tokenizer
from midiforge.store.versions import software_versions
from midiforge.style_parts import Parts, style_parts

if TYPE_CHECKING:  # torch is imported where a model is loaded, so listing runs stays cheap
    import torch

    from midiforge.models.base import MidiModel

log = logging.getLogger(__name__)

SHARED_FILE_MODE = 0o644  # exported runs: rw-r--r--
SHARED_DIR_MODE = 0o755
WHICH = ("best", "last")
# config.yaml's keys -> the type each must have (when present)
CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "model_config": dict,
    "train": dict,
    "dataset": str,
    "init": (str, type(None)),
    "labels": list,
    "instruments": list,
    "style_instruments": dict,
    "style_keys": dict,
    "style_parts": dict,
    "style_pickups": dict,
    "tokenizer": dict,
    "dataset_options": dict,
}
# what train writes into a RUN dir: removed when a run that failed before its first
# checkpoint is trained into again (clear_unfinished_run)
RUN_FILES = (CONFIG_FILE, TOKENIZER_FILE, DATA_STATE_FILE, WEIGHTS_FILE, METRICS_FILE,
             LOSS_PLOT_FILE, TRAIN_LOG_FILE)  # fmt: skip
RUN_FOLDERS = ("checkpoints", PREPARED_SUBDIR)

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
    except MidiforgeError as exc:  # not a mapping at the top level
        raise MidiforgeError(f"{exc}; the run dir is damaged") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8 text
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MidiforgeError(f"{path}: cannot read it ({reason}); the run dir is damaged") from None


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.yaml``, checked: format, version, the type of every key, the model section.

    The model section is checked as the model would be built (types, ranges, parameter count;
    :func:`midiforge.models.registry.checked_config`), so a damaged or edited file fails here
    with the file and the field named, before anything is allocated.
    """
    from midiforge.models import registry

    path = config_path(run_dir)
    config = read_config_yaml(run_dir)
    version = config.get("format_version", RUN_FORMAT_VERSION)
    if config.get("format", RUN_FORMAT) != RUN_FORMAT or type(version) is not int:
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
    for key, kind in CONFIG_TYPES.items():
        if key in config and not isinstance(config[key], kind):
            raise MidiforgeError(
                f"{path}: {key} is {config[key]!r}, not {_kind_name(kind)}; the run dir is damaged"
            )
    if not all(isinstance(label, str) for label in config.get("labels") or []):
        raise MidiforgeError(f"{path}: labels must be a list of names, got {config['labels']!r}")
    instruments = config.get("instruments") or []
    if not all(
        isinstance(p, int) and not isinstance(p, bool) and -1 <= p <= 127 for p in instruments
    ):
        raise MidiforgeError(
            f"{path}: instruments must be GM program numbers -1..127, got {instruments!r}"
        )
    if config["model"] not in registry.names():
        raise choice_error(f"{path}: model", config["model"], registry.names())
    registry.checked_config(
        config["model"], config["model_config"], where=f"{path}: model_config", saved=True
    )
    return config


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", dict: "a mapping", list: "a list", type(None): "empty"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _plain(value: Any) -> Any:
    """Nested dicts/lists of builtins only, so ``yaml.safe_dump`` can write them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)


def _per_style(data: Any, name: str) -> dict[str, Any]:
    """``data.style_instruments()``, ``style_keys()``, ``style_parts()`` or
    ``style_pickups()``; {} for data without them."""
    read = getattr(data, name, None)
    return read() if callable(read) else {}


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
        with atomic.atomic_path(tokenizer_path(run_dir)) as tmp:
            shutil.copyfile(tokenizer_path(data_path), tmp)
    if data_state:
        atomic.write_text(data_state_path(run_dir), json.dumps(data_state, indent=1))
    config = {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "model": model_name,
        "model_config": to_dict(net.config),
        "train": to_dict(cfg),
        "dataset": str(Path(data_path).resolve()),
        "init": None if init is None else str(init),
        "labels": list(labels),
        "instruments": [int(p) for p in getattr(data, "instruments", [0])],
        "style_instruments": _per_style(data, "style_instruments"),
        "style_keys": _per_style(data, "style_keys"),
        "style_parts": _per_style(data, "style_parts"),
        "style_pickups": _per_style(data, "style_pickups"),
        "tokenizer": dict(data.manifest.get("tokenizer") or {}),
        "dataset_options": dict(data.manifest.get("options") or {}),
        "versions": software_versions(),
    }
    save_config(run_dir, _plain(config))


def save_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    """Write ``config.yaml`` (atomically)."""
    atomic.write_text(config_path(Path(run_dir)), yaml.safe_dump(config, sort_keys=False))


def update_train_section(run_dir: Path, cfg: Any) -> None:
    """Rewrite config.yaml's ``train`` section (``--resume`` may change e.g. ``steps``)."""
    saved = read_config_yaml(run_dir)
    saved["train"] = _plain(to_dict(cfg))
    save_config(run_dir, saved)


def read_data_state(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/data_state.json`` (what ``model.prepare_data`` returned), ``{}`` when absent."""
    path = data_state_path(run_dir)
    if not path.is_file():
        return {}
    return atomic.read_json_object(path, "the run dir is damaged")


def apply_data_state(model: MidiModel, run_dir: str | Path) -> dict[str, Any]:
    """Read ``data_state.json`` into ``model``; a field the model cannot use is named."""
    state = read_data_state(run_dir)
    if state:
        try:
            model.load_data_state(state)
        except MidiforgeError as exc:
            raise MidiforgeError(f"{data_state_path(run_dir)}: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            what = f"field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise MidiforgeError(
                f"{data_state_path(run_dir)}: damaged data state, not loaded ({what}); restore "
                "it or train the run again"
            ) from None
        import torch

        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise MidiforgeError(
                    f"{data_state_path(run_dir)}: damaged data state, not loaded ({name} holds "
                    "NaN or infinite values); restore it or train the run again"
                )
    return state


def restore_last(run_dir: str | Path, model: MidiModel, state: dict[str, Any]) -> dict[str, Any]:
    """For ``--resume``: the last checkpoint's weights and the data state into ``model``.

    ``state`` is the checkpoint's ``state.pt`` (:func:`midiforge.store.checkpoint.load_state`);
    its optimizer state is checked against ``model``. Returns the data state.
    """
    from midiforge.store.checkpoint import check_state_fits, last_checkpoint, load_weights

    load_weights(model, last_checkpoint(run_dir) / WEIGHTS_FILE)
    check_state_fits(state, model, run_dir)
    return apply_data_state(model, run_dir)


def clear_unfinished_run(run_dir: str | Path) -> bool:
    """Remove what ``train`` wrote into ``run_dir`` when that run died before its first
    checkpoint (config.yaml and train.log, no checkpoint): such a run can neither resume nor
    be of use. Files that are not a run's are left alone. True when something was removed.

    A run with a checkpoint, or a run without a train.log (one exported by :func:`export_run`,
    the shipped model) is never removed.
    """
    run_dir = Path(run_dir)
    if not is_unfinished_run(run_dir):
        return False
    log.warning("%s holds a run that stopped before its first checkpoint; replacing it", run_dir)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    return True


def is_unfinished_run(run_dir: str | Path) -> bool:
    """What :func:`clear_unfinished_run` would remove."""
    run_dir = Path(run_dir)
    return is_run(run_dir) and not can_resume(run_dir) and (run_dir / TRAIN_LOG_FILE).is_file()


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

    @property
    def instruments(self) -> list[int]:
        """GM programs (-1 = drums) the model learned: those with notes in its training data.

        Runs trained before the ``instruments`` key have a note model's ``programs`` (its
        instrument head's classes) or, for a token model, one merged piano stream.
        """
        saved = self.config.get("instruments") or getattr(self.model.config, "programs", None)
        return [int(p) for p in saved] if saved else [0]

    @property
    def style_instruments(self) -> dict[str, list[int]]:
        """Per style label, the programs its training pieces play (``generate --style`` keeps a
        token run to them unless ``--instruments`` asks); empty for runs written before."""
        saved = self.config.get("style_instruments") or {}
        return {str(k): [int(p) for p in v] for k, v in saved.items() if isinstance(v, list)}

    def style_parts(self, style: str | None) -> Parts:
        """The band, registers and lines a token run's samples of ``style`` are played as
        (:mod:`midiforge.style_parts`); none for runs written before the table."""
        return style_parts(self.config.get("style_parts") or {}, style, ALL_STYLES)

    def style_pickups(self, style: str | None) -> list[list[float]]:
        """Where in its bar ``style``'s train files begin, ``[[beats, files], ...]`` (the
        corpus' for None or a style without its own); empty for runs written before."""
        saved = self.config.get("style_pickups") or {}
        table = saved.get(style) if style in saved else saved.get(ALL_STYLES, [])
        return [[float(b), int(c)] for b, c in table or []]

    @property
    def style_keys(self) -> dict[str, dict[str, int]]:
        """Per style label (and :data:`~midiforge.schema.ALL_STYLES`), how many training pieces
        are in each key (``generate`` moves an unkeyed piece toward them); empty for runs
        written before, which keep the key they play."""
        saved = self.config.get("style_keys") or {}
        return {
            str(style): {str(key): int(n) for key, n in counts.items()}
            for style, counts in saved.items()
            if isinstance(counts, dict)
        }


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
    from midiforge.store.checkpoint import last_checkpoint, load_weights

    if which not in WHICH:
        raise choice_error("which", which, WHICH)
    dev = resolve_device(device)
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = registry.build(
        config["model"],
        config["model_config"],
        where=f"{config_path(run_dir)}: model_config",
        saved=True,
    )
    if which == "best":
        load_weights(model, weights_path(run_dir))
    else:
        load_weights(model, last_checkpoint(run_dir) / WEIGHTS_FILE)
    data_state = apply_data_state(model, run_dir)
    tokenizer = load_tokenizer(tokenizer_path(run_dir)) if has_tokenizer(run_dir) else None
    _check_vocabulary(model, tokenizer, run_dir)
    model.to(dev).eval()
    return LoadedRun(
        model=model,
        config=config,
        tokenizer=tokenizer,
        labels=list(config.get("labels") or []),
        path=run_dir,
        data_state=data_state,
    )


def _check_vocabulary(model: MidiModel, tokenizer: Any, run_dir: Path) -> None:
    """A token model's output ids must all be tokens of the run's tokenizer."""
    vocab = getattr(model.config, "vocab_size", None)
    if tokenizer is not None and vocab is not None and len(tokenizer) != vocab:
        raise MidiforgeError(
            f"{tokenizer_path(run_dir)} has {len(tokenizer)} tokens but the model "
            f"({config_path(run_dir)}: model_config.vocab_size) has {vocab}; the run dir mixes "
            "files of different runs"
        )


def shipped_run(model: str | None = None) -> Path:
    """The run dir of a model shipped inside the package; ``None`` = the default transformer.

    ``model`` is a family name (``"diffusion"``, ``"lstm-multihead"``); each ships with its model
    card in ``docs/`` (see :mod:`midiforge.assets`).
    """
    name = DEFAULT_MODEL if model is None else str(model).strip()
    if name not in SHIPPED:
        raise choice_error("model", name, sorted(SHIPPED))
    path = SHIPPED[name]
    if not is_run(path):
        raise MidiforgeError(
            f"no run given and the shipped {name} model is missing from {path}; reinstall "
            "midiforge or pass a RUN directory written by `midiforge train`"
        )
    return path


def default_run() -> Path:
    """The shipped default model: a small run dir inside the package (see docs/model-card.md)."""
    return shipped_run(None)


def export_run(
    run_dir: str | Path, target: str | Path, *, half: bool = True, dataset: str | None = None
) -> Path:
    """Copy what ``generate`` needs from a RUN dir into ``target``: a small, shippable run.

    The best weights (in float16 when ``half``: half the size, and loading casts them back to
    the model's float32), the config, the tokenizer (token models) and the data state; no
    optimizer state or logs. ``dataset`` replaces the config's dataset path (a path on the
    training machine) with a description for the people who receive the run. ``target`` is
    replaced whole, atomically.
    """
    from midiforge.store.checkpoint import save_weights

    run_dir, target = Path(run_dir), Path(target)
    loaded = load_run(run_dir)
    model = loaded.model.half() if half else loaded.model
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_weights(model, weights_path(tmp))
        names = (CONFIG_FILE, DATA_STATE_FILE)  # a note model never reads the tokenizer
        if loaded.model.encoding == "tokens":
            names += (TOKENIZER_FILE,)
        for name in names:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        if dataset is not None:
            config = load_yaml(config_path(tmp))
            save_config(tmp, {**config, "dataset": dataset})
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
