"""Compiled code, built when midiforge is installed (never at run time), each kernel with the
tensor-op reference its tests compare against.

* ``relative_attention.c`` — causal Music Transformer attention on the CPU (training forward and
  backward, one decoding step over a key/value cache); ``setup.py`` compiles it into the plain
  shared library ``_relative_attention.so`` in this folder.
* :mod:`~midiforge.kernels.native` — loads that library with ctypes (only loads it) and wraps
  its functions for autograd.
* :mod:`~midiforge.kernels.relative_attention` — :func:`attention`, the one entry point the
  models call; it runs the C kernel or the tensor-op reference, chosen in one place.

:func:`status` says which backend fp32 CPU attention gets on this machine, and why.
"""

from __future__ import annotations

from midiforge.kernels import native


def status() -> str:
    """``"c (<library path>)"`` when the compiled kernel is loaded, else ``"tensor-ops (<why>)"``.

    The first call loads the library (or logs, once, why it cannot); ``MIDIFORGE_NATIVE=0``
    forces tensor ops.
    """
    reason = native.unavailable_reason()
    return f"c ({native.LIBRARY})" if reason is None else f"tensor-ops ({reason})"
