"""The public functions, one per pipeline stage, with the same names and options as the commands.

=============  ===================================  =============================================
function       lives in                             what it does
=============  ===================================  =============================================
``prepare``    :mod:`midiforge.data.prepare`        MIDI folder → cleaned, split, encoded dataset
``train``      :mod:`midiforge.training.run`        dataset (or MIDI folder) → run directory
``generate``   :mod:`midiforge.sampling.generate`   run (or the shipped default) → MIDI files
``GenerateOptions`` :mod:`midiforge.sampling.options`   every option of ``generate``, checked
``evaluate``   :mod:`midiforge.metrics.evaluate`    likelihood and musical metrics
``benchmark``  :mod:`midiforge.training.benchmark`  the published protocols, reproduced
``compare``    :mod:`midiforge.training.compare`    model families trained and compared, one report
``convert``    :mod:`midiforge.io.convert`          scores, Guitar Pro, audio → MIDI
``render``     :mod:`midiforge.io.render`           MIDI → WAV (FluidSynth) and piano-roll PNG
=============  ===================================  =============================================

Each is imported on first use, so ``import midiforge`` does not pay for torch or music21 until a
stage that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "prepare": "midiforge.data.prepare",
    "train": "midiforge.training.run",
    "generate": "midiforge.sampling.generate",
    "GenerateOptions": "midiforge.sampling.options",
    "evaluate": "midiforge.metrics.evaluate",
    "benchmark": "midiforge.training.benchmark",
    "compare": "midiforge.training.compare",
    "convert": "midiforge.io.convert",
    "render": "midiforge.io.render",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'midiforge.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
