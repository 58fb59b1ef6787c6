"""What the sampling tests share: one thread for toy models, a band dataset (the pop songs with
drums of ``robustness/MIDIs_multitrack``, every track kept: Program tokens in one REMI stream),
a small pop + folk folder, and tiny runs trained on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

BAND_FOLDER = "robustness/MIDIs_multitrack"


def prepare_band(datasets: Path, out: Path, **options) -> Path:
    from midiforge.data.prepare import prepare

    prepare(datasets / BAND_FOLDER, out, tracks="all", drums=True, jobs=1, quiet=True, **options)
    return out


@pytest.fixture(scope="session")
def band(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The band songs prepared as one REMI stream with Program tokens, built once."""
    return prepare_band(datasets, tmp_path_factory.mktemp("band") / "ds")


@pytest.fixture(autouse=True)
def one_thread():
    """Toy models run fastest on one thread, and the test machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def link_pop_and_folk(datasets: Path, src: Path, n: int) -> Path:
    """``src/pop`` (the first ``n`` POP909 songs) and ``src/folk`` (``n`` Nottingham tunes),
    as links, for ``prepare --labels-from folder``."""
    pop = [datasets / "pop909" / f"{i:03d}" / f"{i:03d}.mid" for i in range(1, n + 1)]
    folk = sorted((datasets / "nottingham").glob("*.mid"))[:n]
    for label, files in (("pop", pop), ("folk", folk)):
        (src / label).mkdir()
        for f in files:
            (src / label / f.name).symlink_to(f.resolve())
    return src


def train_tiny(
    datasets_by_family: dict[str, Path], tiny: dict[str, list[str]], common: list[str], root: Path
) -> dict[str, Path]:
    """One tiny run per family (``common``: everyone's overrides, then ``tiny``: the family's,
    which win), each on its dataset, under ``root/<family>``."""
    from midiforge.training.run import train

    return {
        name: train(datasets_by_family[name], model=name, overrides=common + tiny[name],
                    run_dir=root / name, device="cpu")
        for name in tiny
    }  # fmt: skip
