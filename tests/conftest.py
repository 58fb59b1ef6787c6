"""Shared fixtures: where the real corpora live, and small deterministic helpers.

Tests read real music from ``../shared/datasets`` (relative to the repository root; the
``MIDIFORGE_DATASETS`` environment variable overrides it) and never copy it into the repository.
"""

from __future__ import annotations

import os
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
