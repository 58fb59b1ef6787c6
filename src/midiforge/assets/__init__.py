"""Files that ship inside the package: the default model.

``default/`` is a small run dir (config.yaml, model.safetensors in float16, tokenizer.json)
written by :func:`midiforge.store.run_dir.export_run`.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEFAULT_RUN_DIR = ASSETS_DIR / "default"  # what `generate` and `train --init default` use
