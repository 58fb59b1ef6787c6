"""After training on a user's own folder: do the model's samples copy the training set?

A model fine-tuned on a few dozen pieces can learn to recite them. This samples a few pieces
from the finished run, measures for each the longest run of notes it shares with the training
split (transposition-invariant, :mod:`midiforge.metrics.memorization`) and writes the result to
``RUN/memorization.json``, with a warning when any piece is above the threshold.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.data.encode import notes_from_score
from midiforge.io.midi import load_midi
from midiforge.metrics.memorization import DEFAULT_THRESHOLD_NOTES, memorization_audit
from midiforge.schema import FIELD

log = logging.getLogger(__name__)

AUDIT_SAMPLES = 4  # pieces sampled at the end of training
AUDIT_TOKENS = 512  # tokens (or notes) per audited piece
AUDIT_SEED = 0
AUDIT_FILE = "memorization.json"
SAMPLES_DIR = "samples"
AUDIT_COLUMNS = [FIELD["pitch"], FIELD["onset"], FIELD["duration"]]  # what the audit compares


def audit_run(run_dir: Path, data: Any, *, threshold_notes: int = DEFAULT_THRESHOLD_NOTES) -> dict:
    """Sample ``AUDIT_SAMPLES`` pieces into ``RUN/samples`` and audit them against training.

    Returns the audit dict (also written to ``RUN/memorization.json``).
    """
    from midiforge.sampling.generate import generate

    result = generate(
        run_dir,
        out_dir=run_dir / SAMPLES_DIR,
        n=AUDIT_SAMPLES,
        max_tokens=AUDIT_TOKENS,
        seed=AUDIT_SEED,
        device="cpu",
    )
    generated = [notes_from_score(load_midi(p))[:, AUDIT_COLUMNS] for p in result.paths]
    notes = data.notes("train")
    training = [np.asarray(notes[i])[:, AUDIT_COLUMNS] for i in range(len(notes))]
    audit: dict[str, Any] = memorization_audit(generated, training, threshold_notes)
    audit["samples"] = [str(p) for p in result.paths]
    (run_dir / AUDIT_FILE).write_text(json.dumps(audit, indent=2), encoding="utf-8")
    flagged = sum(audit["flagged"])
    if flagged:
        log.warning(
            "memorization: %d of %d samples share a run of >= %d notes with the training set "
            "(longest: %s notes); the model may be copying its data: train fewer steps or "
            "on more files (see %s)",
            flagged,
            len(result.paths),
            threshold_notes,
            max(audit["longest_runs"]),
            run_dir / AUDIT_FILE,
        )
    else:
        log.info(
            "memorization: no sample shares a run of >= %d notes with the training set "
            "(longest: %s notes)",
            threshold_notes,
            max(audit["longest_runs"], default=0),
        )
    return audit
