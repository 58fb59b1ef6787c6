"""Stop a running generation between two model calls, for a cancel or a spent time budget.

``midiforge.generate`` has no cancel argument, and it should not need one: every sampler
calls the model once per step, so the web worker asks PyTorch to call a check before every
module's forward (a global forward pre-hook, registered once). The check belongs to the
thread that set it, so only the worker's own generation is stopped, and only while
:func:`checking` is active; it raises :class:`~midiforge.web.jobs.JobStopped`, which unwinds
the sampler like any exception (nothing the sampler holds is left half-written: files are
written after sampling, atomically).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_local = threading.local()
_installed = threading.Lock()
_handle: object | None = None


def _before_forward(module: object, args: object) -> None:
    check = getattr(_local, "check", None)
    if check is not None:
        check()


def _install() -> None:
    global _handle
    with _installed:
        if _handle is None:
            from torch.nn.modules.module import register_module_forward_pre_hook

            _handle = register_module_forward_pre_hook(_before_forward)


@contextlib.contextmanager
def checking(check: Callable[[], None]) -> Iterator[None]:
    """Call ``check()`` before every PyTorch module forward on this thread, inside the block."""
    _install()
    previous = getattr(_local, "check", None)
    _local.check = check
    try:
        yield
    finally:
        _local.check = previous
