"""Files that ship inside the package: the trained models a fresh install plays.

Each folder is a small run dir (config.yaml, model.safetensors in float16, tokenizer.json when
the family reads tokens) written by :func:`midiforge.store.run_dir.export_run`, rebuilt by
``bash scripts/train_shipped.sh NAME`` and described in its model card under ``docs/``.
``SHIPPED`` maps the family name a user types (``generate --model diffusion``) to its folder;
the transformer's folder keeps its old name, ``default``, because it is the default.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "transformer"  # what `generate` plays with neither RUN nor --model
SHIPPED: dict[str, Path] = {
    "transformer": ASSETS_DIR / "default",  # docs/model-card.md
    "diffusion": ASSETS_DIR / "diffusion",  # docs/model-card-diffusion.md
    "lstm-multihead": ASSETS_DIR / "lstm-multihead",  # docs/model-card-lstm-multihead.md
}
DEFAULT_RUN_DIR = SHIPPED[DEFAULT_MODEL]  # what `generate` and `train --init default` use
