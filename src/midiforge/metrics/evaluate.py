"""The ``evaluate`` stage: a run's held-out likelihood, or generated music against a reference.

``evaluate(RUN, split=...)``
    NLL per token / bits / perplexity of a trained model on its dataset's split
    (:func:`midiforge.metrics.likelihood.run_likelihood`).
``evaluate(generated=DIR, reference=DATASET_OR_DIR)``
    Musical metrics of every generated file, the same of the reference, their overlapping areas
    (MGEval), the framewise Consistency/Variance of Mittal et al. with a ceiling computed between
    two halves of the reference, the metrics per instrument class (GM families and drums,
    :mod:`midiforge.metrics.by_instrument`) beside the whole-piece ones, and a memorization
    audit against the training pieces. Writes ``report.md``, ``report.json`` and PNG histograms
    to ``out``.

Bar-based metrics (groove consistency, empty measures, Mittal's frames) use each MIDI file's
first time signature (6/8 → bars of 3 beats). A DATASET dir stores no time signature, so its
pieces are taken as 4/4 unless ``beats_per_bar`` says otherwise; ``beats_per_bar`` given
overrides every piece's bar length, generated and reference alike.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.errors import MidiforgeError, choice_error
from midiforge.io.midi import is_midi_path, load_midi
from midiforge.metrics import by_instrument, music, overlap, self_similarity
from midiforge.metrics.features import DRUM_METRICS, SCALAR_METRICS, piece_metrics, set_features
from midiforge.metrics.memorization import DEFAULT_THRESHOLD_NOTES, memorization_audit
from midiforge.metrics.music import Piece
from midiforge.store.names import is_dataset

log = logging.getLogger(__name__)

MAX_REFERENCE_PIECES = 300  # reference pieces used for the distributions (evenly spaced)
DEFAULT_OUT = Path("evaluation")


def _midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_midi_path(p))


def load_midi_folder(folder: str | Path, what: str) -> tuple[list[str], list[Piece]]:
    """Names and pieces of every readable MIDI file under ``folder`` (bad files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MidiforgeError(f"{what} {folder}: folder not found")
    names, pieces = [], []
    for path in _midi_files(folder):
        try:  # load_midi also refuses impossible times, meters and tempos
            score = load_midi(path)
        except MidiforgeError as exc:  # a corrupt file is reported, not fatal
            log.warning("skipping %s", exc)
            continue
        names.append(str(path.relative_to(folder)))
        pieces.append(music.piece_from_score(score))
    if not pieces:
        raise MidiforgeError(f"{what} {folder}: no readable MIDI files (.mid/.midi) in it")
    return names, pieces


def load_dataset_split(path: str | Path, split: str, style: str | None = None) -> list[Piece]:
    """Pieces (4/4) of one split of a DATASET dir, optionally only the files labelled ``style``."""
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
    return [music.piece_from_fields(np.asarray(seqs[i]), fields) for i in keep]


def load_reference(
    path: str | Path, split: str = "train", style: str | None = None
) -> tuple[list[Piece], list[Piece], str]:
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


def compare_features(
    gen_feats: dict[str, np.ndarray],
    ref_feats: dict[str, np.ndarray],
    bounds: str = overlap.DEFAULT_OVERLAP_BOUNDS,
) -> dict[str, Any]:
    """Summaries of both sets' features and their MGEval overlap, feature by feature.

    A drum metric is left out when neither set has a piece with drums.
    """
    out: dict[str, Any] = {}
    for name in gen_feats:
        if name in DRUM_METRICS and not (
            np.isfinite(gen_feats[name]).any() or np.isfinite(ref_feats[name]).any()
        ):
            continue
        entry: dict[str, Any] = overlap.mgeval(gen_feats[name], ref_feats[name], bounds)
        if name in SCALAR_METRICS or name in DRUM_METRICS:
            entry["generated"] = _summary(gen_feats[name])
            entry["reference"] = _summary(ref_feats[name])
        out[name] = entry
    return out


def compare_sets(
    generated: Sequence[Piece],
    reference: Sequence[Piece],
    bounds: str = overlap.DEFAULT_OVERLAP_BOUNDS,
) -> dict[str, Any]:
    """Aggregate metrics of both sets of pieces and their MGEval overlap, feature by feature."""
    return compare_features(set_features(generated), set_features(reference), bounds)


def _half(feats: dict[str, np.ndarray], which: int) -> dict[str, np.ndarray]:
    """The features of every other piece, from the first (0) or the second (1): the halves
    the ceilings compare, without computing any feature twice."""
    return {name: values[which::2] for name, values in feats.items()}


def _one_side(feats: dict[str, np.ndarray], side: str) -> dict[str, Any]:
    """A class only one set has: that set's summaries, nothing to overlap with."""
    other = "reference" if side == "generated" else "generated"
    empty = _summary(np.zeros(0))
    return {
        name: {"oa": math.nan, side: _summary(values), other: empty}
        if values.ndim == 1
        else {"oa": math.nan}
        for name, values in feats.items()
    }


def compare_classes(
    generated: Sequence[Piece],
    reference: Sequence[Piece],
    bounds: str = overlap.DEFAULT_OVERLAP_BOUNDS,
) -> dict[str, Any]:
    """The metrics per instrument class (:mod:`~midiforge.metrics.by_instrument`), with ceilings.

    Each class present in either set gets its pieces' counts, a ``status`` (``both``,
    ``generated only``, ``reference only``) and, per metric, both sets' summaries, the MGEval
    overlap and its ``ceiling``: the same overlap between the two halves of the reference's
    pieces of that class (NaN with fewer than two pieces a half).
    """
    gen, ref = by_instrument.split_by_class(generated), by_instrument.split_by_class(reference)
    out: dict[str, Any] = {}
    for name in (c for c in by_instrument.CLASS_ORDER if c in gen or c in ref):
        g, r = gen.get(name, []), ref.get(name, [])
        status = "both" if g and r else ("generated only" if g else "reference only")
        g_feats = by_instrument.class_features(g, name)
        r_feats = by_instrument.class_features(r, name)
        if status == "both":
            metrics = compare_features(g_feats, r_feats, bounds)
        else:
            metrics = _one_side(g_feats if g else r_feats, status.split()[0])
        ceiling = compare_features(_half(r_feats, 0), _half(r_feats, 1), bounds)
        for metric, entry in metrics.items():
            entry["ceiling"] = ceiling[metric]["oa"] if metric in ceiling else math.nan
        out[name] = {"status": status, "n_generated": len(g), "n_reference": len(r),
                     "metrics": metrics}  # fmt: skip
    return out


def _with_bars(pieces: list[Piece], beats_per_bar: float | None) -> list[Piece]:
    if beats_per_bar is None:
        return pieces
    if not beats_per_bar > 0:
        raise MidiforgeError(f"--beats-per-bar {beats_per_bar}: a bar must last more than 0 beats")
    return [dataclasses.replace(p, beats_per_bar=float(beats_per_bar)) for p in pieces]


def _bar_lengths(pieces: Sequence[Piece]) -> dict[str, int]:
    """How many pieces have each bar length: ``{"3": 12, "4": 30}`` (beats per bar)."""
    values, counts = np.unique([p.beats_per_bar for p in pieces], return_counts=True)
    return {f"{v:g}": int(c) for v, c in zip(values, counts)}


def _framewise(gen: list[Piece], ref: list[Piece]) -> dict[str, Any]:
    """Mittal et al.'s statistics of both sets, with the reference-halves ceiling."""
    fss, cv = self_similarity.framewise_self_similarity, self_similarity.consistency_variance

    def notes(pieces: list[Piece]) -> list[np.ndarray]:
        return [p.notes for p in pieces]

    def bars(pieces: list[Piece]) -> list[float]:
        return [p.beats_per_bar for p in pieces]

    half_a, half_b = ref[0::2], ref[1::2]
    return {
        "generated": fss(notes(gen), bars(gen)),
        "reference": fss(notes(ref), bars(ref)),
        "consistency_variance": cv(notes(gen), notes(ref), bars(gen), bars(ref)),
        "ceiling": cv(notes(half_a), notes(half_b), bars(half_a), bars(half_b)),
    }


def evaluate_generated(
    generated: str | Path,
    reference: str | Path,
    *,
    out: str | Path = DEFAULT_OUT,
    threshold_notes: int = DEFAULT_THRESHOLD_NOTES,
    beats_per_bar: float | None = None,
    reference_split: str = "train",
    style: str | None = None,
    overlap_bounds: str = overlap.DEFAULT_OVERLAP_BOUNDS,
    asked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of a folder of generated MIDI against a reference; writes the report to ``out``.

    ``beats_per_bar`` None: each piece's bar from its time signature (a dataset's pieces 4/4);
    a number: that bar for every piece. ``overlap_bounds``: see :mod:`midiforge.metrics.overlap`.
    ``asked``: what generation was asked for (``key``, ``range``, ``max_polyphony``, ``bars``,
    ``chords``);
    how well each file kept it goes to ``result["adherence"]`` (:mod:`.adherence`).
    """
    from midiforge.metrics.report import write_report

    if overlap_bounds not in overlap.OVERLAP_BOUNDS:
        raise choice_error("--overlap", overlap_bounds, overlap.OVERLAP_BOUNDS)
    names, gen = load_midi_folder(generated, "--generated")
    ref_all, train, described = load_reference(reference, reference_split, style)
    gen = _with_bars(gen, beats_per_bar)
    ref = _with_bars(_evenly(ref_all, MAX_REFERENCE_PIECES), beats_per_bar)
    audit = memorization_audit([p.notes for p in gen], [p.notes for p in train], threshold_notes)
    per_file = [
        {"file": name, **piece_metrics(piece), "longest_training_run": run}
        for name, piece, run in zip(names, gen, audit["longest_runs"])
    ]
    gen_feats, ref_feats = set_features(gen), set_features(ref)
    ceiling = compare_features(_half(ref_feats, 0), _half(ref_feats, 1), overlap_bounds)
    result = {
        "generated": str(generated),
        "reference": described,
        "n_generated": len(gen),
        "n_reference": len(ref),
        "overlap_bounds": overlap_bounds,
        "bar_lengths": {
            "source": "given" if beats_per_bar is not None else "time signature",
            "generated": _bar_lengths(gen),
            "reference": _bar_lengths(ref),
        },
        "per_file": per_file,
        "aggregate": compare_features(gen_feats, ref_feats, overlap_bounds),
        "ceiling": {name: v["oa"] for name, v in ceiling.items()},
        "framewise": _framewise(gen, ref),
        "per_instrument": compare_classes(gen, ref, overlap_bounds),
        "memorization": {k: v for k, v in audit.items() if k != "flagged"},
    }
    if asked:
        from midiforge.metrics.adherence import folder_adherence

        result["adherence"] = folder_adherence(generated, **asked)
    write_report(result, Path(out), gen_features=gen_feats, ref_features=ref_feats)
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
    beats_per_bar: float | None = None,
    overlap_bounds: str = overlap.DEFAULT_OVERLAP_BOUNDS,
    asked: dict[str, Any] | None = None,
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
    beats_per_bar : bar length in beats for every piece; by default each MIDI file's first
        time signature (a DATASET reference's pieces are 4/4: a dataset stores no meter).
    overlap_bounds : where MGEval's overlap integral runs: ``minmax`` (between the smallest and
        largest distance, as MGEval's code; the default) or ``full`` (the whole line).
    asked : with ``generated``, the request the files were generated for (``key``, ``range``,
        ``max_polyphony``, ``bars``, ``chords``): adds their adherence
        (:mod:`midiforge.metrics.adherence`; chord adherence's ceiling is measured by
        ``pop909_ceiling`` there and reported in docs/benchmarks.md).
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
        beats_per_bar=beats_per_bar,
        overlap_bounds=overlap_bounds,
        asked=asked,
    )
