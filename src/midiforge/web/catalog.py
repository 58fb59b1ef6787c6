"""The runs and datasets on disk, as the front ends (web page and menu) offer them.

Both front ends list these instead of asking people to type paths. Reading the folders is the
store's (:mod:`midiforge.store.listing`); what is the web's own is :func:`resolve_run`, which
makes sure a request can only name a run inside the server's runs folder.
"""

from __future__ import annotations

from pathlib import Path

from midiforge.errors import MidiforgeError
from midiforge.store.listing import (
    DEFAULT_ID,
    DatasetInfo,
    RunInfo,
    default_model_path,
    default_run_info,
    find_datasets,
    find_runs,
    read_run,
)
from midiforge.store.names import is_run

__all__ = [
    "DEFAULT_ID",
    "DatasetInfo",
    "RunInfo",
    "default_model_available",
    "default_run_info",
    "find_datasets",
    "find_runs",
    "read_run",
    "resolve_run",
]


def default_model_available() -> bool:
    """Whether the package ships a default model, i.e. ``generate(run=None)`` works."""
    return default_model_path() is not None


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
    if not is_run(candidate):
        raise MidiforgeError(
            f"model {run_id!r}: no run in the runs folder by that name; pick one of the listed runs"
        )
    return candidate
