"""May ``prepare`` write its dataset to OUT? ``--overwrite`` replaces only what midiforge made.

Replacing OUT deletes it, so the rules are about what must never be deleted: the MIDI files
being prepared (SRC inside OUT, e.g. ``prepare songs/ . --overwrite``, once deleted SRC and
exited 0), and any folder that is not a dataset. A dataset folder is recognised by its
``manifest.json`` naming the dataset format; an empty folder holds nothing to lose.
"""

from __future__ import annotations

from pathlib import Path

from midiforge.errors import MidiforgeError
from midiforge.store.dataset_dir import read_manifest_json
from midiforge.store.names import DATASET_FORMAT, MANIFEST_FILE, manifest_path


def is_dataset_dir(folder: Path) -> bool:
    """True when ``folder/manifest.json`` is a JSON object naming the dataset format."""
    if not manifest_path(folder).is_file():
        return False
    try:
        manifest = read_manifest_json(folder)
    except MidiforgeError:  # unreadable or not an object: not something midiforge wrote
        return False
    return manifest.get("format") == DATASET_FORMAT


def check_out(src: Path, out: Path, overwrite: bool) -> None:
    """Refuse an OUT that would hold SRC, lie inside it, or replace something not a dataset.

    Nothing is deleted here; ``prepare`` later swaps OUT for the new dataset only when this
    passed, so after it OUT is absent, an empty folder, or a dataset folder to be replaced.
    """
    src_real, out_real = src.resolve(), out.resolve()
    if src_real == out_real:
        raise MidiforgeError(f"OUT: {out} is SRC itself; write the dataset to another folder")
    if out_real in src_real.parents:
        raise MidiforgeError(
            f"OUT: {out} contains SRC {src}; replacing it would delete the MIDI files being "
            "prepared; write the dataset to a folder outside SRC"
        )
    if src_real in out_real.parents:
        raise MidiforgeError(f"OUT: {out} is inside SRC {src}; write the dataset elsewhere")
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink():  # replacing renames the link, and the swap's cleanup cannot remove it
        raise MidiforgeError(
            f"OUT: {out} is a symbolic link; give the folder it points to ({out.resolve()})"
        )
    if not out.is_dir():
        raise MidiforgeError(
            f"OUT: {out} is a file, not a folder; --overwrite replaces only a dataset folder; "
            "choose another path"
        )
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise MidiforgeError(
            f"OUT: {out} exists and is not empty; pass overwrite=True "
            "(--overwrite) to replace it, or choose another folder"
        )
    if not is_dataset_dir(out):
        raise MidiforgeError(
            f"OUT: {out} is not a midiforge dataset (no {MANIFEST_FILE} with "
            f'"format": "{DATASET_FORMAT}"), so --overwrite will not delete it; '
            "choose another folder, or empty this one yourself"
        )
