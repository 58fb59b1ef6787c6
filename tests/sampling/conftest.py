"""A prepared band dataset: the ten pop songs with drums of ``robustness/MIDIs_multitrack``,
every track kept (``prepare --tracks all --drums``: Program tokens in one REMI stream)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

BAND_FOLDER = "robustness/MIDIs_multitrack"


def record_instruments(ds: Path) -> None:
    """The manifest's ``instruments`` (program -> train notes), counted from the train split's
    notes, for a ``prepare`` that does not write it yet (issue 15 adds it to ``prepare``; once
    it does, this returns at once)."""
    from midiforge.data.encode import FIELD
    from midiforge.store.dataset_dir import PreparedDataset, read_manifest, write_manifest

    manifest = read_manifest(ds)
    if manifest.get("instruments"):
        return
    notes = PreparedDataset(ds).notes("train")
    counts: collections.Counter[int] = collections.Counter()
    for i in range(len(notes)):
        counts.update(notes[i][:, FIELD["program"]].astype(int).tolist())
    manifest["instruments"] = {str(p): n for p, n in sorted(counts.items())}
    write_manifest(ds, manifest)


def prepare_band(datasets: Path, out: Path, **options) -> Path:
    from midiforge.data.prepare import prepare

    prepare(datasets / BAND_FOLDER, out, tracks="all", drums=True, jobs=1, quiet=True, **options)
    record_instruments(out)
    return out


@pytest.fixture(scope="session")
def band(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The band songs prepared as one REMI stream with Program tokens, built once."""
    return prepare_band(datasets, tmp_path_factory.mktemp("band") / "ds")
