"""Framewise self-similarity, Consistency and Variance of Mittal et al. (2021).

"Symbolic Music Generation with Diffusion Models": a piece is cut into frames of
``FRAME_BARS`` bars that start every ``HOP_BARS`` bars; in each frame the pitches and the
durations of the notes starting there are modelled as Gaussians, and adjacent frames are
compared by the overlapping area of their Gaussians. Pooled over a set of pieces, the mean and
variance of those areas describe how much a piece changes from one passage to the next;
Consistency and Variance say how close a generated set's mean and variance come to a reference's.

Frames lie inside the piece: the last one ends at or before the end of the bar holding the last
note's end, as in the public implementations, which slice whole frames of the piece's bars
(e.g. plassma/symbolic-music-discrete-diffusion, ``utils/eval_utils.py``:
``by_bar[start:start + width]``). A frame running past the end would hold a note or two, and its
overlap with the frame before it would be noise that inflates the variance. Bars are each
piece's own (``beats_per_bar``, from its time signature), where those implementations assume
4/4.

Every piece is read up to ``max_bars`` bars (:data:`MAX_BARS`, 32), the same length for all.
Mittal et al. compare sets of equal-length sequences; pooled over whole pieces of unequal
length, a few long ones set the variance: in Nottingham the 1,539-beat medley ``jigs110``
alone holds 255 of ~17,600 frame pairs and, with ``morris8``, most of the low overlaps, so
two halves of the corpus differ 1.7-1.8x in variance (Variance 0.34 pitch, 0.16 duration).
Cut to their first 32 bars (the length of a typical AABB tune, and about what a 1024-token
sample spans), the halves agree (0.92 and 0.86; ``bench/self_similarity.py`` prints every
cap). ``max_bars=None`` reads whole pieces.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from midiforge.errors import MidiforgeError
from midiforge.metrics.music import BEATS_PER_BAR, DURATION, ONSET, PITCH, end_beat

FRAME_BARS = 4  # frame length
HOP_BARS = 2  # frame start to frame start
MIN_STD = 1e-2  # floor on a frame's standard deviation (semitones or beats): one repeated value
BAR_DECIMALS = 6  # the piece's length in bars is snapped to this many decimals before ceil
MAX_BARS = 32  # every piece is read up to this many bars, so long pieces do not outweigh others


def _normal_cdf(x: float, mu: float, sd: float) -> float:
    return 0.5 * (1.0 + math.erf((x - mu) / (sd * math.sqrt(2.0))))


def _normal_logpdf(x: float, mu: float, sd: float) -> float:
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd)


def gaussian_overlap(mu1: float, sd1: float, mu2: float, sd2: float) -> float:
    """Exact overlapping area of N(mu1, sd1²) and N(mu2, sd2²) (standard deviations ≥ MIN_STD).

    The densities cross where a quadratic in x vanishes; between crossings one density is the
    lower one, so the area is a sum of normal-CDF differences.
    """
    sd1, sd2 = max(sd1, MIN_STD), max(sd2, MIN_STD)
    if math.isclose(sd1, sd2):
        roots = [] if math.isclose(mu1, mu2) else [(mu1 + mu2) / 2]
        sd2 = sd1
    else:
        a = 1 / (2 * sd2**2) - 1 / (2 * sd1**2)
        b = mu1 / sd1**2 - mu2 / sd2**2
        c = mu2**2 / (2 * sd2**2) - mu1**2 / (2 * sd1**2) + math.log(sd2 / sd1)
        disc = math.sqrt(max(b * b - 4 * a * c, 0.0))
        roots = sorted([(-b - disc) / (2 * a), (-b + disc) / (2 * a)])
    edges = [-math.inf, *roots, math.inf]
    area = 0.0
    for lo, hi in itertools.pairwise(edges):
        if math.isinf(lo) and math.isinf(hi):
            probe = mu1
        elif math.isinf(lo):
            probe = hi - 1.0
        elif math.isinf(hi):
            probe = lo + 1.0
        else:
            probe = (lo + hi) / 2
        first_lower = _normal_logpdf(probe, mu1, sd1) <= _normal_logpdf(probe, mu2, sd2)
        mu, sd = (mu1, sd1) if first_lower else (mu2, sd2)
        area += _normal_cdf(hi, mu, sd) - _normal_cdf(lo, mu, sd)
    return float(min(max(area, 0.0), 1.0))


def frame_starts(
    notes: np.ndarray, beats_per_bar: float = BEATS_PER_BAR, max_bars: int | None = None
) -> np.ndarray:
    """Start beats of the frames inside the piece, ``(f,)``: every ``HOP_BARS`` bars from 0,
    while the frame's ``FRAME_BARS`` bars end by the end of the last note's bar (and by bar
    ``max_bars``, when given)."""
    n_bars = math.ceil(round(end_beat(notes) / beats_per_bar, BAR_DECIMALS))
    if max_bars is not None:
        n_bars = min(n_bars, int(max_bars))
    n_frames = max(0, (n_bars - FRAME_BARS) // HOP_BARS + 1)
    return np.arange(n_frames) * HOP_BARS * beats_per_bar


def frame_overlaps(
    notes: np.ndarray, beats_per_bar: float = BEATS_PER_BAR, max_bars: int | None = None
) -> dict[str, list[float]]:
    """Gaussian overlap of pitch and of duration between each pair of adjacent frames.

    A note belongs to the frames its onset falls in; a pair is skipped when either frame has
    no note. A piece shorter than ``FRAME_BARS + HOP_BARS`` bars has no pair.
    """
    out: dict[str, list[float]] = {"pitch": [], "duration": []}
    frame = FRAME_BARS * beats_per_bar
    stats = []
    for start in frame_starts(notes, beats_per_bar, max_bars):
        inside = notes[(notes[:, ONSET] >= start) & (notes[:, ONSET] < start + frame)]
        if len(inside) == 0:
            stats.append(None)
            continue
        stats.append(
            (
                (inside[:, PITCH].mean(), inside[:, PITCH].std()),
                (inside[:, DURATION].mean(), inside[:, DURATION].std()),
            )
        )
    for prev, cur in itertools.pairwise(stats):
        if prev is None or cur is None:
            continue
        for key, k in (("pitch", 0), ("duration", 1)):
            out[key].append(gaussian_overlap(*prev[k], *cur[k]))
    return out


def _bars_per_piece(n: int, beats_per_bar: float | Sequence[float]) -> list[float]:
    if isinstance(beats_per_bar, (int, float)):
        return [float(beats_per_bar)] * n
    bars = [float(b) for b in beats_per_bar]
    if len(bars) != n:
        raise MidiforgeError(
            f"beats_per_bar: {len(bars)} bar lengths for {n} pieces; give one per piece or one"
        )
    return bars


def framewise_self_similarity(
    notes_list: Sequence[np.ndarray],
    beats_per_bar: float | Sequence[float] = BEATS_PER_BAR,
    max_bars: int | None = MAX_BARS,
) -> dict[str, dict[str, float]]:
    """Mittal et al. (2021) framewise self-similarity of a set of pieces.

    Parameters
    ----------
    notes_list : note arrays ``(n_i, 3)`` of (pitch, onset beats, duration beats) — see
        :mod:`midiforge.metrics.music`.
    beats_per_bar : bar length in beats, one for every piece or one per piece (frames are
        ``FRAME_BARS`` bars, hop ``HOP_BARS`` bars).
    max_bars : each piece is read up to this many bars (None: whole pieces); see the module
        docstring for why.

    Returns
    -------
    ``{"pitch": {"mean", "variance", "pairs"}, "duration": {...}}``: mean and (population)
    variance of the overlapping areas of all adjacent-frame pairs of all pieces, pooled.
    """
    pooled: dict[str, list[float]] = {"pitch": [], "duration": []}
    for notes, bar in zip(notes_list, _bars_per_piece(len(notes_list), beats_per_bar)):
        for key, values in frame_overlaps(notes, bar, max_bars).items():
            pooled[key].extend(values)
    return {
        key: {
            "mean": float(np.mean(v)) if v else math.nan,
            "variance": float(np.var(v)) if v else math.nan,
            "pairs": len(v),
        }
        for key, v in pooled.items()
    }


def consistency_variance(
    generated: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    generated_beats_per_bar: float | Sequence[float] = BEATS_PER_BAR,
    reference_beats_per_bar: float | Sequence[float] = BEATS_PER_BAR,
    max_bars: int | None = MAX_BARS,
) -> dict[str, dict[str, float]]:
    """Mittal et al. Consistency and Variance of generated pieces against reference pieces.

    ``generated`` and ``reference`` are lists of note arrays, each with its bar lengths (see
    :func:`framewise_self_similarity`). Per attribute (pitch, duration):
    Consistency = max(0, 1 − |μ_OA − μ_GT| / μ_GT), Variance = max(0, 1 − |σ²_OA − σ²_GT| / σ²_GT),
    where μ, σ² are the pooled framewise overlap statistics; 1 is a perfect match.
    """
    gen = framewise_self_similarity(generated, generated_beats_per_bar, max_bars)
    ref = framewise_self_similarity(reference, reference_beats_per_bar, max_bars)
    out: dict[str, dict[str, float]] = {}
    for key in ("pitch", "duration"):
        g, r = gen[key], ref[key]
        out[key] = {
            "consistency": _relative_match(g["mean"], r["mean"]),
            "variance": _relative_match(g["variance"], r["variance"]),
            "mean_generated": g["mean"],
            "mean_reference": r["mean"],
            "variance_generated": g["variance"],
            "variance_reference": r["variance"],
        }
    return out


def _relative_match(value: float, truth: float) -> float:
    if math.isnan(value) or math.isnan(truth) or truth == 0:
        return math.nan
    return max(0.0, 1.0 - abs(value - truth) / truth)
