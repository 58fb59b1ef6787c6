"""The defaults of ``compare``, kept apart so the command prints its help without torch."""

from __future__ import annotations

FAMILIES = ("transformer", "lstm", "gru", "lstm-multihead", "diffusion")
DEFAULT_TIME = "3m"  # per family, when neither time nor steps is given
DEFAULT_PIECES = 8  # pieces sampled per family
DEFAULT_NOTES = 256  # notes asked for per piece (token models: that many notes' tokens)
