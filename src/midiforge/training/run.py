"""The ``train`` stage: a DATASET dir (or a plain folder of MIDI) in, a RUN dir out.

This module resolves everything a run needs before the loop starts: the config (YAML sections
``model:`` and ``train:`` plus ``--set`` overrides), the dataset (preparing a raw MIDI folder on
the fly), the model (fresh, from ``--init`` weights, or from ``--resume``), the device and the
process group. It writes the self-describing part of the RUN dir (``config.yaml``, the tokenizer
copy, ``data_state.json``) and hands the rest to :class:`midiforge.training.trainer.Trainer`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midiforge.config import apply_overrides, from_dict, load_yaml
from midiforge.device import resolve_device
from midiforge.errors import MidiforgeError
from midiforge.io.midi import is_midi_path
from midiforge.store import checkpoint as ckpt
from midiforge.store import run_dir as runs
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.listing import is_prepared_source
from midiforge.store.names import (
    PREPARED_SUBDIR,
    TRAIN_LOG_FILE,
    has_tokenizer,
    is_dataset,
    tokenizer_path,
    weights_path,
)
from midiforge.store.tokenizer_file import load_tokenizer
from midiforge.training import distributed
from midiforge.training.logbook import attach_file_log, detach
from midiforge.training.settings import (
    TrainConfig,
    check_config,
    folder_defaults,
    load_train_config,
    parse_duration,
    set_cpu_threads,
)
from midiforge.training.trainer import Trainer, windows_needed

log = logging.getLogger(__name__)

DEFAULT_MODEL = "transformer"
SECTIONS = ("model", "train")  # the top-level keys of a config file
DEFAULT_RUNS_DIR = Path("runs")
INIT_PREPARE_OPTIONS = (  # from --init: what makes the same tokenizer and instruments
    "tokenizer",
    "tracks",
    "programs",
    "drums",
    "instrument_groups",
    "bos_eos",
    "controls",
    "fim",
)
SMALL_FOLDER_FILES = 200  # a raw MIDI folder smaller than this fine-tunes the default model


# --------------------------------------------------------------------------- config


def split_config(
    config: str | Path | dict | None, overrides: list[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model values, train values)`` from a YAML file or dict and ``section.key=value``s."""
    data = load_yaml(config) if isinstance(config, (str, Path)) else dict(config or {})
    data = apply_overrides(data, overrides)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise MidiforgeError(
            f"config: unknown section(s) {', '.join(unknown)}; accepted: model, train "
            "(write --set train.lr=1e-3 or --set model.d_model=256)"
        )
    sections = []
    for name in SECTIONS:
        section = data.get(name) or {}
        if not isinstance(section, dict):
            raise MidiforgeError(f"config: section {name!r} must be a mapping of keys to values")
        sections.append(section)
    return sections[0], sections[1]


# --------------------------------------------------------------------------- dataset


def _ensure_dataset(path: Path, run_dir: Path, info: distributed.Dist, init_run: Path | None):
    """A prepared DATASET dir for ``path``: as is, or prepared on the fly into ``RUN/dataset``."""
    if is_prepared_source(path):
        return path
    target = run_dir / PREPARED_SUBDIR
    if info.is_main and not is_dataset(target):
        from midiforge.data.prepare import prepare

        log.info("%s is a MIDI folder: preparing it into %s with prepare's defaults", path, target)
        kwargs: dict[str, Any] = {}
        if init_run is not None:  # encode as the initial model's data was (checked later)
            options = runs.read_run_config(init_run).get("dataset_options") or {}
            kwargs = {k: options[k] for k in INIT_PREPARE_OPTIONS if k in options}
        prepare(path, target, **kwargs)
    distributed.barrier(info)
    return target


def make_windows(data: Any, model: Any, cfg: TrainConfig, split: str, *, train: bool, world=1):
    """The torch Dataset of windows a model family reads (tokens or notes) for ``split``.

    Training windows are random draws keyed by index; the set holds as many as the whole run
    reads, so no window repeats (see :class:`midiforge.training.trainer.StepBatches`).
    """
    from midiforge.data import dataset as ds

    count = windows_needed(cfg, world) if train else None
    aug = cfg.augment and train
    if model.encoding == "notes":
        if cfg.fim:
            raise MidiforgeError(
                f"train.fim={cfg.fim}: fill-in-the-middle reorders token windows, and this "
                "family reads notes (it infills by inpainting or its prefix); set train.fim=0"
            )
        length = getattr(model.config, "length", cfg.window)  # fixed-length models (diffusion)
        if length != cfg.window:
            raise MidiforgeError(
                f"train.window={cfg.window} differs from the model's length={length} notes; "
                f"set --set train.window={length} (or model.length={cfg.window})"
            )
        return ds.NoteWindows(
            data,
            split,
            cfg.window,
            train=train,
            transpose=cfg.augment_pitch if aug else 0,
            time_stretch=cfg.augment_tempo if aug else 0.0,
            velocity_scale=cfg.augment_velocity_scale if aug else 0.0,
            seed=cfg.seed,
            epoch_windows=count,
            balance=cfg.balance if train else 0.0,
            piece_start=cfg.piece_start if train else 0.0,
        )
    limit = getattr(model, "max_seq_len", None)
    if limit is not None and cfg.seq_len > limit:
        raise MidiforgeError(
            f"train.seq_len={cfg.seq_len} is longer than the model's max_seq_len={limit}; "
            f"lower train.seq_len or raise model.max_seq_len"
        )
    return ds.TokenWindows(
        data,
        split,
        cfg.seq_len,
        train=train,
        transpose=cfg.augment_pitch if aug else 0,
        velocity_shift=cfg.augment_velocity if aug else 0,
        seed=cfg.seed,
        epoch_windows=count,
        balance=cfg.balance if train else 0.0,
        fim=cfg.fim if train else 0.0,
        piece_start=cfg.piece_start if train else 0.0,
    )


def _split_windows(data: Any, split: str) -> int:
    return int(data.manifest.get("splits", {}).get(split, {}).get("files", 0) or 0)


# --------------------------------------------------------------------------- init / tokenizer


def resolve_init(init: str | Path) -> Path:
    """The RUN dir to start from; ``"default"`` is the model shipped inside the package."""
    if str(init) == "default":
        return runs.default_run()
    path = Path(init)
    runs.read_run_config(path)
    return path


def _tokenizer_signature(folder: Path, manifest_tok: dict[str, Any]) -> Any:
    if has_tokenizer(folder):
        tok = load_tokenizer(tokenizer_path(folder))
        return type(tok).__name__, dict(tok.vocab), len(tok)
    return manifest_tok.get("name"), manifest_tok.get("vocab_size")


def check_same_tokenizer(data: Any, data_path: Path, init_run: Path, init_cfg: dict) -> int:
    """Fine-tuning needs the dataset encoded as the initial model was trained.

    Returns 0 for the same tokenizer, or the run's vocabulary size when the dataset's tokenizer
    is the run's with tokens added after its last id (``prepare --controls``/``--fim`` over the
    shipped model's tokenizer): the model then grows (``checkpoint.load_weights_grown``).
    """
    mine = _tokenizer_signature(data_path, data.manifest.get("tokenizer") or {})
    theirs = _tokenizer_signature(init_run, init_cfg.get("tokenizer") or {})
    if mine == theirs:
        return 0
    if _extends(mine, theirs):
        return int(theirs[2])
    raise MidiforgeError(
        f"--init {init_run}: the dataset {data_path} uses a different tokenizer than that "
        "run (vocabulary or kind differ); prepare the MIDI folder with the run's "
        f"tokenizer ({tokenizer_path(init_run)}) or train from scratch without --init"
    )


def _extends(mine: Any, theirs: Any) -> bool:
    """Whether tokenizer signature ``mine`` is ``theirs`` plus tokens after its last id."""
    if len(mine) != 3 or len(theirs) != 3 or mine[0] != theirs[0] or mine[2] <= theirs[2]:
        return False
    old, new = theirs[1], mine[1]
    return all(new.get(tok) == i for tok, i in old.items()) and all(
        i >= theirs[2] for tok, i in new.items() if tok not in old
    )


def _fill_from_dataset(values: dict[str, Any], cls: type, data: Any, labels: list[str]) -> None:
    """``vocab_size``, ``n_labels`` and ``programs`` come from the dataset, never the user."""
    names = {f.name for f in dataclasses.fields(cls)}
    if "vocab_size" in names:
        values["vocab_size"] = int((data.manifest.get("tokenizer") or {}).get("vocab_size", 0))
    if "n_labels" in names:
        values["n_labels"] = len(labels)
    if "programs" in names:
        values["programs"] = list(data.instruments)


# --------------------------------------------------------------------------- train


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _new_run_dir(run_dir: str | Path | None, name: str, info: distributed.Dist) -> Path:
    if run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = DEFAULT_RUNS_DIR / f"{name}-{stamp}"
    path = Path(distributed.broadcast_object(str(run_dir), info))
    if runs.is_run(path) and not runs.is_unfinished_run(path):
        raise MidiforgeError(
            f"--run-dir {path} already holds a run; continue it with --resume {path} "
            "or choose another --run-dir"
        )
    if info.is_main:
        runs.clear_unfinished_run(path)  # died before its first checkpoint: replaced, logged
        path.mkdir(parents=True, exist_ok=True)
    distributed.barrier(info)
    return path


def train(
    dataset: str | Path | None = None,
    *,
    model: str = DEFAULT_MODEL,
    config: str | Path | dict | None = None,
    overrides: list[str] | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    init: str | Path | None = None,
    device: str = "auto",
    steps: int | None = None,
    time: float | str | None = None,
) -> Path:
    """Train a model on a prepared dataset (or a folder of MIDI files) and return its RUN dir.

    Parameters
    ----------
    dataset
        A DATASET dir written by ``prepare``, or a folder of MIDI files (prepared on the fly
        with ``prepare``'s defaults into ``RUN/dataset``). Optional with ``resume``.
    model
        Registry name of the model family (ignored with ``resume``/``init``, whose run names it).
    config
        A YAML file (or dict) with sections ``model:`` and ``train:``.
    overrides
        ``section.key=value`` strings applied on top, e.g. ``["train.lr=1e-3"]``.
    run_dir
        Where to write the run (default ``runs/<model>-<time>``); must not hold a run already.
    resume
        A RUN dir to continue exactly from its last checkpoint; ``train.*`` overrides (e.g. a
        larger ``train.steps``) apply, model changes do not.
    init
        A RUN dir whose weights, model config and tokenizer start this run (fine-tuning);
        ``"default"`` is reserved for the shipped model.
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    steps, time
        ``train.steps`` and ``train.time``: training ends at the first of the step count, the
        time budget (seconds, or ``"10m"``, ``"90s"``, ``"1h30m"``; ``"none"``: no limit) and
        early stopping. A plain MIDI folder trains for 10 minutes unless ``steps`` is given
        alone; a resumed run gets the budget afresh (see :mod:`midiforge.training.settings`).
    """
    limits: dict[str, Any] = {} if steps is None else {"steps": steps}
    if time is not None:
        limits["time"] = parse_duration(time, "time")
    dev = resolve_device(device)
    info = distributed.init(dev.type)
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)
    if dev.type == "cpu":
        set_cpu_threads(info)
    try:
        return _train(dataset, model, config, overrides, limits, run_dir, resume, init, dev, info)
    finally:
        distributed.shutdown(info)


def _default_init(
    folder: Path, init: str | Path | None, model: str, raw: bool
) -> str | Path | None:
    """``init`` as given; for a small raw MIDI folder and no ``init``, the shipped model.

    Fine-tuning the default model needs far less data than training from scratch, so a folder
    under ``SMALL_FOLDER_FILES`` files starts from it unless ``init="none"`` asks for scratch.
    """
    if init is not None:
        return None if str(init) == "none" else init
    if not raw or model != DEFAULT_MODEL or not folder.is_dir():
        return None
    files = sum(1 for p in folder.rglob("*") if is_midi_path(p))
    if files >= SMALL_FOLDER_FILES:
        return None
    try:
        runs.default_run()
    except MidiforgeError:  # no shipped model in this install: train from scratch
        return None
    log.info(
        "%s holds %d MIDI files (< %d): fine-tuning the shipped default model; "
        "pass --init none to train from scratch",
        folder,
        files,
        SMALL_FOLDER_FILES,
    )
    return "default"


def _train(dataset, model_name, config, overrides, limits, run_dir, resume, init, dev, info):
    from midiforge.models import registry

    model_values, train_values = split_config(config, overrides)
    train_values = {**train_values, **limits}  # the steps=/time= keywords win over the config
    init_run = init_cfg = state = None
    old_vocab = 0  # --init over a tokenizer with added tokens: the run's vocabulary size
    raw_folder = False  # a MIDI folder prepared on the fly: audited for memorization at the end
    if resume is not None:
        run_dir = Path(resume)
        state = ckpt.load_state(run_dir)  # fails first, naming what is missing, if none
        saved = runs.read_run_config(run_dir)
        if model_values:
            raise MidiforgeError(
                f"--resume {run_dir}: the model config of a run cannot change "
                f"(got model.{', model.'.join(model_values)}); start a new run with --init"
            )
        model_name = saved["model"]
        model_values = registry.saved_values(model_name, saved["model_config"])
        train_values = {**(saved.get("train") or {}), **train_values}
        data_path = Path(dataset) if dataset is not None else Path(saved["dataset"])
        if dataset is None and not data_path.exists() and (run_dir / PREPARED_SUBDIR).is_dir():
            data_path = run_dir / PREPARED_SUBDIR
        labels = list(saved.get("labels") or [])
    else:
        if dataset is None:
            raise MidiforgeError("DATASET is required (a prepared dataset or a MIDI folder)")
        raw_folder = not is_dataset(Path(dataset))
        if raw_folder:  # a 10-minute budget unless steps are given alone
            train_values = folder_defaults(train_values)
        init = _default_init(Path(dataset), init, model_name, raw_folder)
        if init is not None:
            init_run = resolve_init(init)
            init_cfg = runs.read_run_config(init_run)
            if model_name not in (DEFAULT_MODEL, init_cfg["model"]):
                raise MidiforgeError(
                    f"--model {model_name} conflicts with --init {init_run}, a "
                    f"{init_cfg['model']} run; drop --model"
                )
            model_name = init_cfg["model"]
            model_values = {
                **registry.saved_values(model_name, init_cfg["model_config"]),
                **model_values,
            }
        run_dir = _new_run_dir(run_dir, model_name, info)
        data_path = _ensure_dataset(Path(dataset), run_dir, info, init_run)
        labels = []
    cfg = load_train_config(train_values)
    check_config(cfg)  # before anything is seeded, read or built
    cls = registry.model_class(model_name)
    from_dict(cls.config_class, model_values, where=f"model {model_name}")  # names bad keys

    data = PreparedDataset(data_path)
    if resume is None:
        labels = list(data.labels)
        if init_cfg is not None:
            old_vocab = check_same_tokenizer(data, data_path, init_run, init_cfg)
            if old_vocab:
                model_values["vocab_size"] = int(data.manifest["tokenizer"]["vocab_size"])
            init_labels = list(init_cfg.get("labels") or [])
            if labels and labels != init_labels:
                raise MidiforgeError(
                    f"--init {init_run}: the dataset's labels {labels} differ from the run's "
                    f"{init_labels}; relabel the folders or train without --init"
                )
            labels = init_labels
        else:
            _fill_from_dataset(model_values, cls.config_class, data, labels)

    _seed_everything(cfg.seed)
    net = registry.build(model_name, model_values)
    handler = attach_file_log(run_dir / TRAIN_LOG_FILE) if info.is_main else None
    try:
        if resume is not None:
            data_state = runs.restore_last(run_dir, net, state)  # weights, data state, checked
        else:
            if init_run is not None and old_vocab:
                grown = ckpt.load_weights_grown(net, weights_path(init_run), old_vocab)
                log.info(
                    "--init %s: vocabulary grown from %d to %d ids (%s); new rows start fresh",
                    init_run,
                    old_vocab,
                    model_values["vocab_size"],
                    ", ".join(grown),
                )
            elif init_run is not None:
                ckpt.load_weights(net, weights_path(init_run))
            if init_run is not None:
                data_state = runs.read_data_state(init_run)
                if data_state:
                    net.load_data_state(data_state)
                else:
                    data_state = net.prepare_data(data) or {}
            else:
                data_state = net.prepare_data(data) or {}
            if info.is_main:
                runs.write_run_files(
                    run_dir, net, model_name, cfg, data, data_path, labels, data_state, init
                )
            distributed.barrier(info)
        log.info(
            "training %s (%d parameters) on %s into %s (%s, %d process(es))",
            model_name,
            net.num_parameters(),
            data_path,
            run_dir,
            dev,
            info.world_size,
        )
        train_set = make_windows(data, net, cfg, "train", train=True, world=info.world_size)
        valid_set = None
        if _split_windows(data, "valid") > 0:
            valid_set = make_windows(data, net, cfg, "valid", train=False)
        trainer = Trainer(net, cfg, train_set, valid_set, run_dir, device=dev, info=info)
        if state is not None:
            trainer.load_state_dict(state)
            if info.is_main:
                runs.update_train_section(run_dir, cfg)  # e.g. a larger train.steps
        result = trainer.fit()
        log.info("finished at step %d (best valid loss %s)", result.steps, result.best_valid_loss)
        if raw_folder and info.is_main:
            from midiforge.training.audit import audit_run

            audit_run(run_dir, data)
    finally:
        if handler is not None:
            detach(handler)
    return run_dir
