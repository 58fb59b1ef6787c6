"""How ``compare`` scores a family: held-out likelihood per note, its music against held-out music.

Likelihood per *note*, not per token. Two token models with different vocabularies spend
different numbers of tokens on a note, so their NLL per token does not line up; the NLL of the
whole held-out split divided by its number of notes does (:func:`token_nll_per_note`). The note
LSTM models a note as a pitch class (a discrete probability) plus continuous time and velocity
(an L1 and a squared error in standardised units, densities rather than probabilities), so only
its pitch NLL per note is a probability comparable in kind to the token models' (and even that
one is conditioned on slightly less: a REMI token model has read the note's position before it
predicts its pitch). Diffusion has no likelihood here; its denoising loss is reported apart.

Music against held-out music: the MGEval overlap area of every feature of
:mod:`midiforge.metrics.features` (:func:`midiforge.metrics.evaluate.compare_sets`), summarised
by the mean over features and by that mean relative to the *ceiling*, the same mean between two
halves of the held-out pieces (what real music of this corpus reaches against itself).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from midiforge.metrics.evaluate import compare_sets
from midiforge.metrics.likelihood import sequence_nll, single_thread
from midiforge.metrics.memorization import DEFAULT_THRESHOLD_NOTES, memorization_audit
from midiforge.metrics.music import Piece
from midiforge.store.names import has_tokenizer

PITCH_TOKEN_PREFIX = "Pitch"  # MidiTok's Pitch_60, PitchDrum_36 (and PitchIntervalTime_…)
RANK_BY = "mean MGEval overlap relative to the held-out ceiling (higher first)"
LIKELIHOOD_RANK_BY = "held-out NLL per note in nats, token families (lower first)"


# ----------------------------------------------------------------------------- likelihood


def _split_notes(data: Any, split: str) -> int:
    return int(sum(len(seq) for seq in data.notes(split)))


def _pitch_ids(data: Any) -> np.ndarray | None:
    """Ids of the dataset's pitch tokens; None without a tokenizer or when ids are BPE merges."""
    if not has_tokenizer(data.path) or (data.manifest.get("tokenizer") or {}).get("bpe"):
        return None
    vocab = data.tokenizer.vocab
    ids = [i for token, i in vocab.items() if token.startswith(PITCH_TOKEN_PREFIX)]
    return np.asarray(sorted(ids), dtype=np.int64)


def token_nll_per_note(model: Any, data: Any, split: str, context: int | None) -> dict[str, Any]:
    """Held-out NLL of a token model: the split's summed NLL over its tokens and its notes.

    Every target token of every piece is scored once (:func:`sequence_nll`: in strided windows
    of ``context`` tokens for a transformer, in one pass for a recurrent model).
    ``pitch_nll_per_note`` sums only the targets that are pitch tokens (NaN with BPE, whose
    tokens mix several kinds).
    """
    pitch_ids = _pitch_ids(data)
    total, pitch_total, tokens = 0.0, 0.0, 0
    for ids in data.tokens(split):
        ids = np.asarray(ids, dtype=np.int64)
        nll = sequence_nll(model, ids, context)  # (len(ids) - 1,)
        total, tokens = total + float(nll.sum()), tokens + len(nll)
        if pitch_ids is not None:
            pitch_total += float(nll[np.isin(ids[1:], pitch_ids)].sum())
    notes = _split_notes(data, split)
    return {
        "kind": "tokens",
        "split": split,
        "nll_per_note": total / notes if notes else math.nan,
        "pitch_nll_per_note": pitch_total / notes if notes and pitch_ids is not None else math.nan,
        "nll_per_token": total / tokens if tokens else math.nan,
        "tokens": tokens,
        "notes": notes,
    }


@single_thread()
@torch.no_grad()
def note_nll_per_note(model: Any, data: Any, split: str) -> dict[str, Any]:
    """Held-out per-note losses of a note model's heads, each piece read in one pass.

    ``pitch`` is the pitch head's NLL in nats per note (a probability); the other heads are
    their training losses per note (``time``: L1, ``velocity``: squared error, standardised).
    """
    sums: dict[str, float] = {}
    notes = 0
    labels = data.file_labels(split)
    for i, rows in enumerate(data.notes(split)):
        if len(rows) == 0:
            continue
        batch = {
            "notes": torch.from_numpy(np.array(rows, np.float32))[None],  # (1, n, F)
            "mask": torch.ones(1, len(rows), dtype=torch.bool),
            "label": torch.tensor([int(labels[i])], dtype=torch.long),
        }
        for key, value in model.loss(batch).items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(rows)
        notes += len(rows)
    per_head = {k: v / notes for k, v in sums.items() if k != "loss"} if notes else {}
    return {
        "kind": "notes",
        "split": split,
        "pitch_nll_per_note": per_head.get("pitch", math.nan),
        "loss_per_note": sums.get("loss", math.nan) / notes if notes else math.nan,
        "per_head": per_head,
        "notes": notes,
    }


# ----------------------------------------------------------------------------- music


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def ceiling(reference: Sequence[Piece]) -> dict[str, Any]:
    """MGEval overlaps of one half of the held-out pieces against the other half."""
    per_feature = {k: v["oa"] for k, v in compare_sets(reference[0::2], reference[1::2]).items()}
    return {"per_feature": per_feature, "mean": _mean(list(per_feature.values()))}


def music_scores(
    generated: Sequence[Piece],
    reference: Sequence[Piece],
    training_notes: Sequence[np.ndarray],
    ceiling_row: dict[str, Any],
    threshold_notes: int = DEFAULT_THRESHOLD_NOTES,
) -> dict[str, Any]:
    """Overlaps of the generated pieces with the held-out ones, and how much they copy.

    The mean overlap and the ceiling's mean are taken over the same features (those finite in
    both), so a feature NaN on one side cannot tilt the ratio.
    """
    overlaps = {k: v["oa"] for k, v in compare_sets(generated, reference).items()}
    both = [
        k
        for k, v in overlaps.items()
        if math.isfinite(v) and math.isfinite(ceiling_row["per_feature"].get(k, math.nan))
    ]
    mean = _mean([overlaps[k] for k in both])
    top = _mean([ceiling_row["per_feature"][k] for k in both])
    audit = memorization_audit([p.notes for p in generated], training_notes, threshold_notes)
    runs = audit["longest_runs"]
    return {
        "overlaps": overlaps,
        "mean_overlap": mean,
        "ceiling_mean": top,
        "overlap_ratio": mean / top if top and math.isfinite(top) else math.nan,
        "memorization": {
            "longest_run_max": int(max(runs)) if runs else 0,
            "longest_run_mean": float(np.mean(runs)) if runs else math.nan,
            "threshold_notes": threshold_notes,
            "share_flagged": audit["share_flagged"],
        },
    }


# ----------------------------------------------------------------------------- ranking


def _ordered(values: dict[str, float], *, descending: bool) -> list[str]:
    """Names with a finite value, best first (ties by name); the rest, by name, after them."""
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    order = sorted(finite, key=lambda k: (-finite[k] if descending else finite[k], k))
    return order + sorted(k for k in values if k not in finite)


def rank(families: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The families in order of overlap/ceiling, and the token families in order of NLL/note.

    The overlap ratio is the one measure every family has (it reads generated music only);
    NLL per note lines up the token families only (see the module docstring).
    """
    ratios = {k: (f.get("music") or {}).get("overlap_ratio", math.nan) for k, f in families.items()}
    nll = {
        k: f["likelihood"]["nll_per_note"]
        for k, f in families.items()
        if (f.get("likelihood") or {}).get("kind") == "tokens"
    }
    return {
        "ranking": {"by": RANK_BY, "order": _ordered(ratios, descending=True)},
        "likelihood_ranking": {"by": LIKELIHOOD_RANK_BY, "order": _ordered(nll, descending=False)},
    }
