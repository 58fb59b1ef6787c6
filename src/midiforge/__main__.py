"""``python -m midiforge`` — the same as the ``midiforge`` command (torchrun uses this form)."""

from __future__ import annotations

from midiforge.cli import main

raise SystemExit(main())
