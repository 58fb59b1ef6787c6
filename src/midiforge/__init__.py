"""midiforge: a folder of music files in, a trained generative model and new music out.

The public functions live in :mod:`midiforge.api` and are re-exported here. They are imported
lazily so that ``import midiforge`` (and the ``midiforge`` command's start-up) stays fast and
pulls in torch only when a stage that needs it runs.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = (
    "prepare",
    "train",
    "generate",
    "GenerateOptions",
    "evaluate",
    "benchmark",
    "compare",
    "convert",
    "render",
)

__all__ = ["MidiforgeError", "__version__", *_API]

from midiforge.errors import MidiforgeError  # noqa: E402  (after __version__ on purpose)


def __getattr__(name: str) -> Any:
    if name in _API:
        from midiforge import api

        return getattr(api, name)
    raise AttributeError(f"module 'midiforge' has no attribute {name!r}")
