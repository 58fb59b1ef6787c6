"""The runs and datasets found under a folder, described for the front ends to list.

A RUN dir is any folder holding a run config, a DATASET dir any folder holding a manifest
(:func:`midiforge.store.run_dir.is_run`, :func:`midiforge.store.dataset_dir.is_dataset`).
Listing reads only those small files, never weights or arrays, and a folder that cannot be
described does not break the list: it is logged with its reason and left out (or, with
``include_broken``, listed with :attr:`RunInfo.problem` set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midiforge.assets import DEFAULT_MODEL, SHIPPED
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, GM_MAX, instrument_name
from midiforge.io.midi import is_midi_path
from midiforge.store.dataset_dir import read_manifest_json
from midiforge.store.names import can_resume, config_path, has_weights, is_dataset, is_run
from midiforge.store.run_dir import read_config_yaml, shipped_run

log = logging.getLogger(__name__)

SCAN_DEPTH = 2  # folder levels below the runs/data folder searched (runs/<group>/<run> counts)
DEFAULT_ID = "default"  # the id of the shipped default model (``generate(run=None)``)
# the other shipped models are "default:<family>", e.g. "default:diffusion"
UNKNOWN_MODEL = "?"


@dataclass(frozen=True)
class RunInfo:
    """One trained run as the front ends show it.

    ``id`` is the path relative to the runs folder (``"default"`` for the shipped model), which
    is what a web request sends back; ``path`` is ``None`` only for a shipped model, which
    ``shipped`` names (``generate(model=shipped)``).
    ``problem`` is empty for a usable run, else why it cannot be described.
    """

    id: str
    path: Path | None
    model: str  # registry name of the model family, e.g. "lstm"
    sampler: str  # the family's declared sampler: "tokens", "notes" or "diffusion"
    labels: list[str] = field(default_factory=list)  # style labels it was trained with
    dataset: str = ""
    has_weights: bool = True  # model.safetensors exists, so it can generate
    can_resume: bool = False  # checkpoints/last exists, so training can continue
    steps: int = 0  # the run's train.steps (the step it trains up to)
    problem: str = ""  # why the run is broken ("" when it is not)
    # GM programs (-1 = drums) it learned; [0] for runs from before instruments were kept
    instruments: list[int] = field(default_factory=lambda: [0])
    shipped: str = ""  # the family name of a model shipped with the package, else ""
    controls: list[str] = field(default_factory=list)  # learned controls (prepare --controls)

    def to_json(self) -> dict[str, Any]:
        """What a web page may show to anyone: no full local path."""
        return {
            "id": self.id,
            "model": self.model,
            "kind": self.sampler,
            "labels": list(self.labels),
            "dataset": "/".join(Path(self.dataset).parts[-2:]),
            "has_weights": self.has_weights,
            "shipped": self.shipped,
            "instruments": [{"program": p, "name": instrument_name(p)} for p in self.instruments],
        }


@dataclass(frozen=True)
class DatasetInfo:
    """One prepared dataset: its folder, file count and style labels."""

    id: str
    path: Path
    files: int
    labels: list[str]
    tokenizer: str


def model_sampler(model: str, where: str) -> str:
    """The sampler a registered model family declares (``MidiModel.sampler``)."""
    from midiforge.models import registry

    try:
        return registry.model_class(model).sampler
    except MidiforgeError as exc:
        raise MidiforgeError(f"run {where!r}: {exc}") from None


def run_instruments(config: dict[str, Any], where: str) -> list[int]:
    """The config's ``instruments`` (what ``LoadedRun.instruments`` reads), checked."""
    saved = config.get("instruments") or [0]
    if not isinstance(saved, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and DRUMS <= p <= GM_MAX for p in saved
    ):
        raise MidiforgeError(
            f"run {where!r}: instruments must be GM program numbers -1..127, got {saved!r}"
        )
    return list(saved)


def read_run(path: str | Path, *, run_id: str | None = None) -> RunInfo:
    """Describe the run in ``path``; a missing or unreadable config names the fix."""
    path = Path(path)
    if not is_run(path):
        raise MidiforgeError(
            f"run {str(path)!r}: no {config_path(path).name} there; pass a folder written by "
            "`midiforge train`"
        )
    try:
        config = read_config_yaml(path)
    except MidiforgeError as exc:
        raise MidiforgeError(f"run {str(path)!r}: {exc}") from None
    model = str(config.get("model", UNKNOWN_MODEL))
    return RunInfo(
        id=run_id if run_id is not None else path.name,
        path=path,
        model=model,
        sampler=model_sampler(model, str(path)),
        labels=[str(x) for x in config.get("labels") or []],
        dataset=str(config.get("dataset", "")),
        has_weights=has_weights(path),
        can_resume=can_resume(path),
        steps=int((config.get("train") or {}).get("steps", 0) or 0),
        instruments=run_instruments(config, str(path)),
        controls=learned_controls(config),
    )


def learned_controls(config: dict[str, Any]) -> list[str]:
    """The learned controls (``chords``, ``density``, ``polyphony``) the run's dataset was
    prepared with (``prepare --controls``, kept in the config's ``dataset_options``)."""
    from midiforge.schema import CONTROL_NAMES

    asked = (config.get("dataset_options") or {}).get("controls") or []
    return [name for name in CONTROL_NAMES if name in asked]


def marked_dirs(root: Path, is_marked) -> list[Path]:
    """Folders under ``root`` (itself included, ``SCAN_DEPTH`` levels down) that ``is_marked``."""
    if not root.is_dir():
        return []
    found, level = [], [root]
    for _ in range(SCAN_DEPTH + 1):
        below = []
        for folder in level:
            if is_marked(folder):
                found.append(folder)  # a run's own subfolders (checkpoints/) are not runs
                continue
            try:
                below.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
            except OSError:
                continue
        level = below
    return found


def find_runs(runs_dir: str | Path, *, include_broken: bool = False) -> list[RunInfo]:
    """Every run under ``runs_dir``, newest first.

    A run that cannot be described (broken config, unknown model) is logged with its reason and
    skipped, or with ``include_broken`` listed with ``problem`` set and ``has_weights`` False.
    """
    root = Path(runs_dir)
    runs = []
    for folder in marked_dirs(root, is_run):
        run_id = folder.relative_to(root).as_posix()
        try:
            runs.append(read_run(folder, run_id=run_id))
        except MidiforgeError as exc:
            log.warning("skipping %s: %s", folder, exc)
            if include_broken:
                runs.append(
                    RunInfo(run_id, folder, UNKNOWN_MODEL, "", has_weights=False, problem=str(exc))
                )
    runs.sort(key=lambda r: config_path(r.path).stat().st_mtime, reverse=True)
    return runs


def is_prepared_source(path: str | Path) -> bool:
    """What a DATA argument is: True for a prepared dataset, False for a folder with MIDI files;
    anything else is an error, raised before a command writes anything."""
    path = Path(path)
    if is_dataset(path):
        return True
    if not path.is_dir():
        raise MidiforgeError(f"{path}: not found; give a prepared dataset or a MIDI folder")
    if not any(is_midi_path(p) for p in path.rglob("*")):
        raise MidiforgeError(
            f"{path}: not a prepared dataset and has no MIDI files (.mid/.midi); give a folder "
            "of MIDI files or a dataset written by `midiforge prepare`"
        )
    return False


def find_datasets(data_dir: str | Path) -> list[DatasetInfo]:
    """Every prepared dataset under ``data_dir``, sorted by name; unreadable ones are logged."""
    root = Path(data_dir)
    found = []
    for folder in marked_dirs(root, is_dataset):
        try:
            manifest = read_manifest_json(folder)
        except MidiforgeError as exc:
            log.warning("skipping %s: %s", folder, exc)
            continue
        splits = manifest.get("splits") or {}
        files = sum(int((s or {}).get("files", 0)) for s in splits.values())
        found.append(
            DatasetInfo(
                id=folder.relative_to(root).as_posix(),
                path=folder,
                files=files,
                labels=[str(x) for x in manifest.get("labels") or []],
                tokenizer=str((manifest.get("tokenizer") or {}).get("name", "")),
            )
        )
    return sorted(found, key=lambda d: d.id)


def shipped_id(model: str) -> str:
    """The list id of a shipped model: ``"default"`` for the default, else ``"default:<model>"``."""
    return DEFAULT_ID if model == DEFAULT_MODEL else f"{DEFAULT_ID}:{model}"


def shipped_run_info(model: str = DEFAULT_MODEL) -> RunInfo:
    """A shipped model as a list entry (no path: ``generate(model=info.shipped)`` plays it)."""
    info = read_run(shipped_run(model), run_id=shipped_id(model))
    return RunInfo(**{**info.__dict__, "path": None, "shipped": model})


def shipped_run_infos() -> list[RunInfo]:
    """Every model this installation ships, the default first; a missing one is left out."""
    found = []
    for model in sorted(SHIPPED, key=lambda m: (m != DEFAULT_MODEL, m)):
        try:
            found.append(shipped_run_info(model))
        except MidiforgeError as exc:
            log.info("shipped %s model not listed: %s", model, exc)
    return found
