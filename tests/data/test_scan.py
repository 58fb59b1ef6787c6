"""``corpus.scan`` finds the files ``Path.rglob`` and ``is_midi_path`` would, in sorted order."""

from __future__ import annotations

from pathlib import Path

from midiforge.data import corpus
from midiforge.io.midi import is_midi_path

from .conftest import nottingham_files


def _by_rglob(src: Path) -> list[str]:
    """The rule the scan had before it used ``os.scandir`` (and must still give)."""
    found = [p for p in src.rglob("*") if p.is_file() and is_midi_path(p)]
    return sorted(p.relative_to(src).as_posix() for p in found)


def test_scan_finds_what_rglob_finds(datasets: Path, tmp_path: Path) -> None:
    tune = nottingham_files(datasets, 1)[0].resolve()
    src = tmp_path / "src"
    (src / "b" / "deep" / "er").mkdir(parents=True)
    (src / "a").mkdir()
    for rel in ("b/deep/er/x.MID", "a/y.midi", "a/notes.txt", "a/.mid", "a/..mid", "z.mid"):
        (src / rel).write_bytes(tune.read_bytes())
    (src / "a" / "link.mid").symlink_to(tune)  # a link to a file counts
    (src / "a" / "broken.mid").symlink_to(tmp_path / "missing.mid")  # a broken one does not
    (src / "a" / "folder.mid").mkdir()  # a folder named like a file is no file
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.mid").write_bytes(tune.read_bytes())
    (src / "linked").symlink_to(outside)  # links to folders are not followed
    expected = ["a/..mid", "a/link.mid", "a/y.midi", "b/deep/er/x.MID", "z.mid"]
    assert corpus.scan(src) == expected == _by_rglob(src)
    assert corpus.scan(datasets / "robustness") == _by_rglob(datasets / "robustness")
