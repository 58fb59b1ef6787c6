"""Files that ship inside the package: the default model and the transcription model.

``default/`` is a small run dir (config.yaml, model.safetensors in float16, tokenizer.json)
written by :func:`midiforge.training.checkpoint.export_run`; ``basic_pitch/`` is the audio
transcription model (see its README).
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEFAULT_RUN_DIR = ASSETS_DIR / "default"  # what `generate` and `train --init default` use
BASIC_PITCH_DIR = ASSETS_DIR / "basic_pitch"
