"""The ``evaluate`` stage: a run's held-out likelihood, or generated music against a reference.

``evaluate(RUN, split=...)``
    NLL per token / bits / perplexity of a trained model on its dataset's split
    (:func:`midiforge.metrics.likelihood.run_likelihood`).
``evaluate(generated=DIR, reference=DATASET_OR_DIR)``
    Musical metrics of every generated file, the same of the reference, their overlapping areas
    (MGEval), the framewise Consistency/Variance of Mittal et al. with a ceiling computed between
    two halves of the reference, and a memorization audit against the training pieces. Writes
    ``report.md``, ``report.json`` and PNG histograms to ``out``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.io.midi import is_midi_path
from midiforge.metrics import music
from midiforge.metrics.memorization import DEFAULT_THRESHOLD_NOTES, memorization_audit
from midiforge.store.names import is_dataset

log = logging.getLogger(__name__)

MAX_REFERENCE_PIECES = 300  # reference pieces used for the distributions (evenly spaced)
DEFAULT_OUT = Path("evaluation")


def _midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_midi_path(p))


def load_midi_folder(folder: str | Path, what: str) -> tuple[list[str], list[np.ndarray]]:
    """Names and note arrays of every readable MIDI file under ``folder`` (bad files skipped)."""
    import symusic

    folder = Path(folder)
    if not folder.is_dir():
        raise MidiforgeError(f"{what} {folder}: folder not found")
    names, notes = [], []
    for path in _midi_files(folder):
        try:
            score = symusic.Score(str(path))
        except Exception as exc:  # a corrupt file is reported, not fatal
            log.warning("skipping %s: %s", path, exc)
            continue
        names.append(str(path.relative_to(folder)))
        notes.append(music.pitch_onset_duration(score))
    if not notes:
        raise MidiforgeError(f"{what} {folder}: no readable MIDI files (.mid/.midi) in it")
    return names, notes


def load_dataset_split(path: str | Path, split: str, style: str | None = None) -> list[np.ndarray]:
    """Note arrays of one split of a DATASET dir, optionally only the files labelled ``style``."""
    from midiforge.store.dataset_dir import PreparedDataset

    data = PreparedDataset(path)
    fields = data.manifest["note_fields"]
    seqs = data.notes(split)
    keep = range(len(seqs))
    if style is not None:
        if style not in data.labels:
            raise MidiforgeError(
                f"--style {style!r}: the dataset {path} has labels {data.labels or 'none'}"
            )
        ids = data.file_labels(split)
        keep = [i for i in keep if ids[i] == data.labels.index(style)]
    return [music.notes_from_fields(np.asarray(seqs[i]), fields) for i in keep]


def load_reference(
    path: str | Path, split: str = "train", style: str | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """(reference pieces, training pieces, description) from a DATASET dir or a MIDI folder.

    A DATASET dir gives its ``split`` (``train`` by default: generated music should resemble
    what the model learned; ``valid``/``test`` to compare with held-out music), optionally only
    the files labelled ``style``; copying is always measured against the whole ``train`` split,
    what the model saw. A MIDI folder is used whole for both.
    """
    path = Path(path)
    if is_dataset(path):
        train = load_dataset_split(path, "train")
        if not train:
            raise MidiforgeError(f"--reference {path}: the dataset's train split is empty")
        reference = train if split == "train" and style is None else None
        if reference is None:
            reference = load_dataset_split(path, split, style)
        if not reference:
            what = f"{split} split" + (f" labelled {style!r}" if style else "")
            raise MidiforgeError(f"--reference {path}: the dataset's {what} is empty")
        what = f"{split} split" + (f", style {style}" if style else "")
        return reference, train, f"dataset {path} ({what}, {len(reference)} pieces)"
    if style is not None:
        raise MidiforgeError("--style selects labelled files of a DATASET reference, not a folder")
    _, notes = load_midi_folder(path, "--reference")
    return notes, notes, f"MIDI folder {path} ({len(notes)} pieces)"


def _evenly(items: list[Any], limit: int) -> list[Any]:
    if len(items) <= limit:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round()]


def _summary(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(values.mean()), "std": float(values.std()), "n": len(values)}


def compare_sets(generated: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, Any]:
    """Aggregate metrics of both sets and their MGEval overlap, feature by feature."""
    gen_feats, ref_feats = music.set_features(generated), music.set_features(reference)
    out: dict[str, Any] = {}
    for name in gen_feats:
        entry: dict[str, Any] = music.mgeval(gen_feats[name], ref_feats[name])
        if name in music.SCALAR_METRICS:
            entry["generated"] = _summary(gen_feats[name])
            entry["reference"] = _summary(ref_feats[name])
        out[name] = entry
    return out


def evaluate_generated(
    generated: str | Path,
    reference: str | Path,
    *,
    out: str | Path = DEFAULT_OUT,
    threshold_notes: int = DEFAULT_THRESHOLD_NOTES,
    beats_per_bar: int = music.BEATS_PER_BAR,
    reference_split: str = "train",
    style: str | None = None,
) -> dict[str, Any]:
    """Metrics of a folder of generated MIDI against a reference; writes the report to ``out``."""
    from midiforge.metrics.report import write_report

    names, gen = load_midi_folder(generated, "--generated")
    ref_all, train, described = load_reference(reference, reference_split, style)
    ref = _evenly(ref_all, MAX_REFERENCE_PIECES)
    half_a, half_b = ref[0::2], ref[1::2]
    audit = memorization_audit(gen, train, threshold_notes)
    per_file = [
        {"file": name, **music.piece_metrics(n), "longest_training_run": run}
        for name, n, run in zip(names, gen, audit["longest_runs"])
    ]
    result = {
        "generated": str(generated),
        "reference": described,
        "n_generated": len(gen),
        "n_reference": len(ref),
        "per_file": per_file,
        "aggregate": compare_sets(gen, ref),
        "ceiling": {name: v["oa"] for name, v in compare_sets(half_a, half_b).items()},
        "framewise": {
            "generated": music.framewise_self_similarity(gen, beats_per_bar),
            "reference": music.framewise_self_similarity(ref, beats_per_bar),
            "consistency_variance": music.consistency_variance(gen, ref, beats_per_bar),
            "ceiling": music.consistency_variance(half_a, half_b, beats_per_bar),
        },
        "memorization": {k: v for k, v in audit.items() if k != "flagged"},
    }
    write_report(
        result,
        Path(out),
        gen_features=music.set_features(gen),
        ref_features=music.set_features(ref),
    )
    return result


def evaluate(
    run: str | Path | None = None,
    *,
    split: str = "valid",
    generated: str | Path | None = None,
    reference: str | Path | None = None,
    out: str | Path | None = None,
    threshold_notes: int = DEFAULT_THRESHOLD_NOTES,
    device: str = "cpu",
    reference_split: str = "train",
    style: str | None = None,
) -> dict[str, Any]:
    """Evaluate a RUN dir on held-out data, or generated MIDI against a reference.

    Parameters
    ----------
    run : a RUN dir: report NLL (nats and bits per token, perplexity) on ``split``.
    split : ``valid`` or ``test`` (with ``run``).
    generated, reference : a folder of generated MIDI and a DATASET dir or MIDI folder.
    out : where ``report.md``, ``report.json`` and the PNGs go (default ``evaluation/``); with
        ``run``, ``likelihood.json`` is written there when given.
    threshold_notes : memorization: a shared run of at least this many notes flags a file.
    reference_split, style : with a DATASET reference, the split compared against (``train``,
        ``valid`` or ``test``) and only its files with this label; memorization is always
        checked against the whole train split.
    """
    if (run is None) == (generated is None):
        raise MidiforgeError(
            "give either RUN (likelihood on held-out data) or --generated DIR --reference "
            "DATASET_OR_DIR (musical metrics), not both or neither"
        )
    if run is not None:
        from midiforge.metrics.likelihood import run_likelihood

        result = run_likelihood(run, split, device)
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "likelihood.json").write_text(json.dumps(result, indent=1))
        return result
    if reference is None:
        raise MidiforgeError("--generated needs --reference DATASET_OR_DIR to compare against")
    return evaluate_generated(
        generated,
        reference,
        out=out or DEFAULT_OUT,
        threshold_notes=threshold_notes,
        reference_split=reference_split,
        style=style,
    )
