"""The runs and datasets found on disk, listed for the front ends (web page and menu).

A RUN dir is any folder holding ``config.yaml`` (written by ``train``); a DATASET dir is any
folder holding ``manifest.json`` (written by ``prepare``); see ``docs/architecture.md``. Both
front ends offer these lists to pick from instead of asking people to type paths, and the web
server uses :func:`resolve_run` so that a request can only name a run inside its runs folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from midiforge.errors import MidiforgeError

log = logging.getLogger(__name__)

RUN_MARKER = "config.yaml"
DATASET_MARKER = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
RESUME_DIR = "checkpoints/last"
SCAN_DEPTH = 2  # folder levels below the runs/data folder searched (runs/<group>/<run> counts)
DEFAULT_ID = "default"  # the id of the shipped default model (``generate(run=None)``)


@dataclass(frozen=True)
class RunInfo:
    """One trained run as the front ends show it.

    ``id`` is the path relative to the runs folder (``"default"`` for the shipped model), which
    is what a web request sends back; ``path`` is ``None`` only for the shipped default.
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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "kind": self.sampler,
            "labels": list(self.labels),
            "dataset": "/".join(Path(self.dataset).parts[-2:]),  # no full local path
            "has_weights": self.has_weights,
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


def read_run(path: str | Path, *, run_id: str | None = None) -> RunInfo:
    """Describe the run in ``path``; a missing or unreadable ``config.yaml`` names the fix."""
    path = Path(path)
    config_path = path / RUN_MARKER
    if not config_path.is_file():
        raise MidiforgeError(
            f"run {str(path)!r}: no {RUN_MARKER} there; pass a folder written by `midiforge train`"
        )
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MidiforgeError(f"run {str(path)!r}: cannot read {RUN_MARKER}: {exc}") from None
    if not isinstance(config, dict):
        raise MidiforgeError(f"run {str(path)!r}: {RUN_MARKER} is not a mapping")
    model = str(config.get("model", "?"))
    return RunInfo(
        id=run_id if run_id is not None else path.name,
        path=path,
        model=model,
        sampler=model_sampler(model, str(path)),
        labels=[str(x) for x in config.get("labels") or []],
        dataset=str(config.get("dataset", "")),
        has_weights=(path / WEIGHTS_FILE).is_file(),
        can_resume=(path / RESUME_DIR).is_dir(),
        steps=int((config.get("train") or {}).get("steps", 0) or 0),
    )


def _marked_dirs(root: Path, marker: str) -> list[Path]:
    """Folders under ``root`` (itself included, ``SCAN_DEPTH`` levels down) holding ``marker``."""
    if not root.is_dir():
        return []
    found, level = [], [root]
    for _ in range(SCAN_DEPTH + 1):
        below = []
        for folder in level:
            if (folder / marker).is_file():
                found.append(folder)  # a run's own subfolders (checkpoints/) are not runs
                continue
            try:
                below.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
            except OSError:
                continue
        level = below
    return found


def find_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run under ``runs_dir``, newest first; unreadable ones are skipped with a log line."""
    root = Path(runs_dir)
    runs = []
    for folder in _marked_dirs(root, RUN_MARKER):
        try:
            runs.append(read_run(folder, run_id=folder.relative_to(root).as_posix()))
        except MidiforgeError as exc:
            log.warning("skipping %s: %s", folder, exc)
    runs.sort(key=lambda r: (r.path / RUN_MARKER).stat().st_mtime, reverse=True)
    return runs


def find_datasets(data_dir: str | Path) -> list[DatasetInfo]:
    """Every prepared dataset under ``data_dir``, sorted by name."""
    root = Path(data_dir)
    found = []
    for folder in _marked_dirs(root, DATASET_MARKER):
        try:
            manifest = json.loads((folder / DATASET_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: %s", folder, exc)
            continue
        if not isinstance(manifest, dict):
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


def default_model_path() -> Path | None:
    """The shipped default model's run dir (what ``generate(run=None)`` uses), if one ships."""
    try:
        from midiforge.sampling.generate import default_run

        path = Path(default_run())
    except (ImportError, MidiforgeError):
        return None
    return path if (path / RUN_MARKER).is_file() else None


def default_model_available() -> bool:
    """Whether the package ships a default model, i.e. ``generate(run=None)`` works."""
    return default_model_path() is not None


def default_run_info() -> RunInfo:
    """The shipped default model as a list entry (its id is :data:`DEFAULT_ID`)."""
    path = default_model_path()
    if path is None:
        raise MidiforgeError(
            "no default model is shipped; pass a run trained with `midiforge train`"
        )
    info = read_run(path, run_id=DEFAULT_ID)
    return RunInfo(**{**info.__dict__, "path": None})


def resolve_run(run_id: str, runs_dir: str | Path, *, extra: dict[str, Path] | None = None) -> Path:
    """The folder of run ``run_id``, which must lie inside ``runs_dir`` (or be in ``extra``).

    ``extra`` holds runs the operator named on the command line (``--run``), which may live
    elsewhere. Anything else that resolves outside the runs folder is refused, so a web request
    cannot make the server read an arbitrary folder.
    """
    if extra and run_id in extra:
        return extra[run_id]
    root = Path(runs_dir).resolve()
    candidate = (root / run_id).resolve()
    if not candidate.is_relative_to(root) or candidate == root:
        raise MidiforgeError(
            f"model {run_id!r} is outside the runs folder {str(runs_dir)!r}; pick one of the "
            "listed runs"
        )
    if not (candidate / RUN_MARKER).is_file():
        raise MidiforgeError(
            f"model {run_id!r}: no run with a {RUN_MARKER} in the runs folder; pick one of the "
            "listed runs"
        )
    return candidate
