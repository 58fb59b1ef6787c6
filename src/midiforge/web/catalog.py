"""The runs and datasets on disk, as the front ends (web page and menu) offer them.

Both front ends list these instead of asking people to type paths. Reading the folders is the
store's (:mod:`midiforge.store.listing`); what is the web's own is :func:`resolve_run`, which
makes sure a request can only name a run inside the server's runs folder, and
:func:`list_runs`, which lists a run that cannot be read as broken, with its reason, whatever
went wrong in it: one user's broken folder never breaks the page for the others.
"""

from __future__ import annotations

import logging
from pathlib import Path

from midiforge.errors import MidiforgeError
from midiforge.store.listing import (
    DEFAULT_ID,
    UNKNOWN_MODEL,
    DatasetInfo,
    RunInfo,
    find_datasets,
    find_runs,
    marked_dirs,
    read_run,
    shipped_run_infos,
)
from midiforge.store.names import config_path, is_run

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ID",
    "DatasetInfo",
    "RunInfo",
    "find_datasets",
    "find_runs",
    "list_runs",
    "read_run",
    "read_run_or_broken",
    "resolve_run",
    "shipped_run_infos",
]


def broken(run_id: str, path: Path | None, problem: str) -> RunInfo:
    """A list entry for a run that cannot be used: no weights, and why."""
    return RunInfo(run_id, path, UNKNOWN_MODEL, "", has_weights=False, problem=problem)


def read_run_or_broken(path: Path, run_id: str) -> RunInfo:
    """:func:`read_run`, or a broken entry naming what went wrong, whatever the error."""
    try:
        return read_run(path, run_id=run_id)
    except MidiforgeError as exc:
        return broken(run_id, path, str(exc))
    except Exception as exc:  # a config value of the wrong type, an unreadable file...
        log.warning("run %s cannot be read: %s: %s", path, type(exc).__name__, exc)
        return broken(run_id, path, f"run {run_id!r}: {type(exc).__name__}: {exc}")


def _modified(info: RunInfo) -> float:
    try:
        return config_path(info.path).stat().st_mtime if info.path is not None else 0.0
    except OSError:  # removed while listing
        return 0.0


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run under ``runs_dir``, newest first; broken ones listed with ``problem`` set.

    Unlike :func:`find_runs` (which skips a broken run, and only knows the store's own
    errors) any error in one folder is that run's problem, never the listing's.
    """
    root = Path(runs_dir)
    try:
        folders = marked_dirs(root, is_run)
    except OSError as exc:
        log.warning("cannot list %s: %s", root, exc)
        return []
    runs = [read_run_or_broken(f, f.relative_to(root).as_posix()) for f in folders]
    return sorted(runs, key=_modified, reverse=True)


def resolve_run(run_id: str, runs_dir: str | Path, *, extra: dict[str, Path] | None = None) -> Path:
    """The folder of run ``run_id``, which must lie inside ``runs_dir`` (or be in ``extra``).

    ``extra`` holds runs the operator named on the command line (``--run``), which may live
    elsewhere. Anything else that resolves outside the runs folder is refused, so a web request
    cannot make the server read an arbitrary folder.
    """
    if extra and run_id in extra:
        return extra[run_id]
    root = Path(runs_dir).resolve()
    try:
        candidate = (root / run_id).resolve()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        raise MidiforgeError(
            f"model {run_id[:40]!r}: not a name of a run; pick one of the listed runs"
        ) from None
    if not candidate.is_relative_to(root) or candidate == root:
        raise MidiforgeError(
            f"model {run_id[:80]!r} is outside the runs folder {Path(runs_dir).name!r}; pick "
            "one of the listed runs"
        )
    try:
        found = is_run(candidate)
    except (OSError, ValueError):
        found = False
    if not found:
        raise MidiforgeError(
            f"model {run_id[:80]!r}: no run in the runs folder by that name; pick one of the "
            "listed runs"
        )
    return candidate
