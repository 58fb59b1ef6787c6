"""The one trainer for every model family, and its checkpoints.

``midiforge.train`` is both this package and the public ``train`` function: once any
``midiforge.train.*`` module is imported, Python binds the package to the attribute
``midiforge.train`` and hides the lazily re-exported function. Calling the package therefore
calls :func:`midiforge.train.run.train`, so ``midiforge.train(dataset, ...)`` works either way.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from midiforge.train.run import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
