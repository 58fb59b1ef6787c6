"""Shared fixtures: where the real corpora live, and small deterministic helpers.

Tests read real music from ``../shared/datasets`` (relative to the repository root; the
``MIDIFORGE_DATASETS`` environment variable overrides it) and never copy it into the repository.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MIDIFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        raise RuntimeError(
            f"the shared datasets are missing at {DATASETS}; set MIDIFORGE_DATASETS to their folder"
        )
    return DATASETS


POP909_SMALL_IDS = [f"{i:03d}" for i in range(1, 13)]  # 12 songs: 10 train, 1 valid, 1 test
NOTTINGHAM_SMALL_FILES = 24  # the first tunes in name order
NOTTINGHAM_MIN_TOKENS = 64  # folk tunes are short; prepare's default (512) would drop most
NOTTINGHAM_MIN_NOTES = 16


@pytest.fixture(scope="session")
def pop909_small(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared DATASET dir (prepare's defaults) of 12 real POP909 songs, built once."""
    from midiforge.data.prepare import prepare

    src = tmp_path_factory.mktemp("pop909_src")
    for song in POP909_SMALL_IDS:
        (src / f"{song}.mid").write_bytes((datasets / "pop909" / song / f"{song}.mid").read_bytes())
    out = tmp_path_factory.mktemp("pop909_small") / "dataset"
    prepare(src, out, jobs=2, quiet=True)
    return out


@pytest.fixture(scope="session")
def nottingham_small(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared DATASET dir of the first 24 Nottingham tunes (short-file limits lowered), as
    one piano stream (``tracks="merge"``): the tests that use it are about models, sampling and
    the web page, not instruments (those use ``robustness/MIDIs_multitrack``)."""
    from midiforge.data.prepare import prepare

    src = tmp_path_factory.mktemp("nottingham_src")
    for path in sorted((datasets / "nottingham").glob("*.mid"))[:NOTTINGHAM_SMALL_FILES]:
        (src / path.name).write_bytes(path.read_bytes())
    out = tmp_path_factory.mktemp("nottingham_small") / "dataset"
    prepare(
        src,
        out,
        jobs=2,
        quiet=True,
        min_tokens=NOTTINGHAM_MIN_TOKENS,
        min_notes=NOTTINGHAM_MIN_NOTES,
        tracks="merge",
    )
    return out


def interruptible() -> None:
    """``preexec_fn`` for a child that a test stops with Ctrl-C: SIGINT back to its default.

    A shell starts background jobs with SIGINT ignored and children inherit that, so under
    ``.ci/run &`` (or any runner that does the same) a Python child would never see the Ctrl-C
    the test sends. A person's terminal gives the default, which is what this restores.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
