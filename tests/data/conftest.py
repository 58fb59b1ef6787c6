"""Small real corpora for the data-layer tests, symlinked from the shared datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from midiforge.data.prepare import prepare

N_FILES = 12  # per corpus: enough for three splits, small enough for seconds


def link_files(files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        target = folder / f.name
        target.symlink_to(f.resolve())
        out.append(target)
    return out


def pop909_files(datasets: Path, n: int = N_FILES, start: int = 1) -> list[Path]:
    return [datasets / "pop909" / f"{i:03d}" / f"{i:03d}.mid" for i in range(start, start + n)]


def nottingham_files(datasets: Path, n: int = N_FILES, start: int = 0) -> list[Path]:
    return sorted((datasets / "nottingham").glob("*.mid"))[start : start + n]


@pytest.fixture(scope="session")
def small_corpus(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SRC folder with pop/ (12 POP909 songs) and folk/ (12 Nottingham tunes)."""
    root = tmp_path_factory.mktemp("corpus")
    link_files(pop909_files(datasets), root / "pop")
    link_files(nottingham_files(datasets), root / "folk")
    return root


@pytest.fixture(scope="session")
def small_dataset(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small corpus prepared with default options, labels from folders, 2 workers."""
    out = tmp_path_factory.mktemp("prepared") / "ds"
    prepare(small_corpus, out, labels_from="folder", jobs=2, quiet=True)
    return out
