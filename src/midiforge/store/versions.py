"""The software versions a DATASET manifest and a RUN config record: what made the folder."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

RECORDED = ("midiforge", "miditok", "symusic", "torch")


def software_versions() -> dict[str, str]:
    """``{"python": ..., "midiforge": ..., "miditok": ..., "symusic": ..., "torch": ...}``.

    Read from the installed distributions ("unknown" where one is not installed), so the
    store needs no import of the packages themselves.
    """
    out = {"python": platform.python_version()}
    for package in RECORDED:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out
