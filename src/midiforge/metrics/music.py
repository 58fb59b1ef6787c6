"""Objective musical statistics of a piece and the distances between two sets of pieces.

Every function here is pure and works on a *note array*: a float ndarray of shape ``(n, 3)``
whose columns are ``NOTE_COLUMNS`` = (pitch as a MIDI number, onset in beats, duration in
beats), one row per note, in any order. :func:`pitch_onset_duration` builds one from a symusic
``Score`` (every non-drum track), :func:`notes_from_fields` from a dataset's ``notes/{split}``
rows. Times are beats (quarter notes) so the metrics do not depend on tempo or MIDI resolution;
grid-based metrics (polyphony, empty beats, groove) quantize to ``steps_per_beat``.

The per-piece metrics follow the definitions of MusPy (Dong et al., 2020); the set comparison
follows MGEval (Yang & Lerch, 2020: kernel density estimates of intra-set and inter-set
distances and their overlapping area); the framewise self-similarity and its Consistency and
Variance follow Mittal et al. (2021), "Symbolic Music Generation with Diffusion Models".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

NOTE_COLUMNS = ("pitch", "onset", "duration")
PITCH, ONSET, DURATION = 0, 1, 2

STEPS_PER_BEAT = 4  # grid of the piano-roll metrics: 16th notes
BEATS_PER_BAR = 4  # 4/4 unless told otherwise
N_PITCH_CLASSES = 12
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor
# Duration / inter-onset classes for the histograms: 1/8 beat (32nd note) .. 8 beats (two bars),
# one class per power of two; a value goes to the nearest class in log2 space.
LENGTH_CLASSES_BEATS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

# Mittal et al. (2021) frames: 4 bars long, moved by 2 bars.
FRAME_BARS = 4
HOP_BARS = 2
MIN_STD = 1e-2  # floor on a frame's standard deviation (semitones or beats): one repeated value

KDE_GRID_POINTS = 2001  # integration grid of the overlapping area
KDE_MIN_BANDWIDTH = 1e-3  # bandwidth floor when every distance is equal (a point mass)
KDE_GRID_MARGIN = 5.0  # the grid extends this many bandwidths past the data


# ----------------------------------------------------------------------------- note arrays


def pitch_onset_duration(score: Any) -> np.ndarray:
    """The note array ``(n, 3)``: (pitch, onset, duration) of every non-drum note of a symusic
    ``Score``, times in beats, sorted by (onset, pitch).

    Not :func:`midiforge.data.encode.notes_from_score`, which returns the dataset's full note
    rows (all :data:`midiforge.schema.NOTE_FIELDS`, drums included).
    """
    quarter = score.to("quarter") if str(score.ttype) != "Quarter" else score
    rows = []
    for track in quarter.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        arr = track.notes.numpy()
        rows.append(np.stack([arr["pitch"], arr["time"], arr["duration"]], axis=1))
    if not rows:
        return np.zeros((0, 3), dtype=np.float64)
    return sort_notes(np.concatenate(rows).astype(np.float64))


def notes_from_fields(notes: np.ndarray, fields: Sequence[str]) -> np.ndarray:
    """Select the pitch, onset and duration columns of dataset note rows ``(n, len(fields))``."""
    index = [list(fields).index(name) for name in NOTE_COLUMNS]
    return sort_notes(np.asarray(notes, dtype=np.float64)[:, index])


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Rows sorted by (onset, pitch): a chord becomes its notes in ascending pitch."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    return notes[np.lexsort((notes[:, PITCH], notes[:, ONSET]))]


def end_beat(notes: np.ndarray) -> float:
    """Where the last note ends, in beats (0 for an empty piece)."""
    if len(notes) == 0:
        return 0.0
    return float(np.max(notes[:, ONSET] + notes[:, DURATION]))


# ----------------------------------------------------------------------------- pitch


def pitch_range(notes: np.ndarray) -> float:
    """Highest minus lowest pitch, in semitones (NaN for an empty piece)."""
    if len(notes) == 0:
        return math.nan
    return float(notes[:, PITCH].max() - notes[:, PITCH].min())


def n_pitches_used(notes: np.ndarray) -> int:
    """How many distinct MIDI pitches occur."""
    return len(np.unique(notes[:, PITCH]))


def n_pitch_classes_used(notes: np.ndarray) -> int:
    """How many distinct pitch classes (pitch mod 12) occur."""
    return len(np.unique(notes[:, PITCH].astype(int) % N_PITCH_CLASSES))


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Share of notes in each pitch class C..B, shape ``(12,)`` summing to 1 (zeros if empty)."""
    counts = np.bincount(notes[:, PITCH].astype(int) % N_PITCH_CLASSES, minlength=12)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def pitch_class_entropy(notes: np.ndarray) -> float:
    """Shannon entropy of the pitch-class histogram, in bits (0 = one pitch class, log2 12 max)."""
    if len(notes) == 0:
        return math.nan
    p = pitch_class_histogram(notes)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def scale_consistency(notes: np.ndarray) -> float:
    """Largest share of notes inside one of the 24 major and natural-minor scales."""
    if len(notes) == 0:
        return math.nan
    hist = pitch_class_histogram(notes)
    best = 0.0
    for tonic in range(N_PITCH_CLASSES):
        for scale in (MAJOR_SCALE, MINOR_SCALE):
            best = max(best, float(hist[[(tonic + s) % 12 for s in scale]].sum()))
    return best


# ----------------------------------------------------------------------------- rhythm / texture


def piano_roll(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> np.ndarray:
    """Boolean roll ``(T, 128)``: step t is beats [t/spb, (t+1)/spb); a note lasts ≥ 1 step."""
    if len(notes) == 0:
        return np.zeros((0, 128), dtype=bool)
    start = np.round(notes[:, ONSET] * steps_per_beat).astype(int)
    stop = np.round((notes[:, ONSET] + notes[:, DURATION]) * steps_per_beat).astype(int)
    stop = np.maximum(stop, start + 1)
    roll = np.zeros((int(stop.max()), 128), dtype=bool)
    for pitch, a, b in zip(notes[:, PITCH].astype(int), start, stop):
        roll[a:b, pitch] = True
    return roll


def polyphony(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> float:
    """Mean number of sounding pitches over the grid steps where at least one sounds."""
    active = piano_roll(notes, steps_per_beat).sum(axis=1)  # (T,)
    active = active[active > 0]
    return float(active.mean()) if len(active) else math.nan


def polyphony_rate(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> float:
    """Share of all grid steps (silent ones included) where more than one pitch sounds."""
    active = piano_roll(notes, steps_per_beat).sum(axis=1)  # (T,)
    return float((active > 1).mean()) if len(active) else math.nan


def empty_beat_rate(notes: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT) -> float:
    """Share of the piece's beats (up to its last note's end) during which nothing sounds."""
    sounding = piano_roll(notes, steps_per_beat).any(axis=1)  # (T,)
    if len(sounding) == 0:
        return math.nan
    n_beats = -(-len(sounding) // steps_per_beat)
    padded = np.zeros(n_beats * steps_per_beat, dtype=bool)
    padded[: len(sounding)] = sounding
    return float((~padded.reshape(n_beats, steps_per_beat).any(axis=1)).mean())


def groove_consistency(
    notes: np.ndarray,
    steps_per_beat: int = STEPS_PER_BEAT,
    beats_per_bar: int = BEATS_PER_BAR,
) -> float:
    """1 − mean Hamming distance between consecutive bars' onset patterns, per bar step.

    Wu & Yang (2020): a bar's groove is the binary vector of grid steps holding an onset; two
    bars with the same rhythm score 1. NaN when the piece is shorter than two bars.
    """
    if len(notes) == 0:
        return math.nan
    steps_per_bar = steps_per_beat * beats_per_bar
    onset_steps = np.round(notes[:, ONSET] * steps_per_beat).astype(int)
    total_steps = max(int(np.ceil(end_beat(notes) * steps_per_beat)), onset_steps.max() + 1)
    n_bars = -(-total_steps // steps_per_bar)
    if n_bars < 2:
        return math.nan
    grooves = np.zeros(n_bars * steps_per_bar, dtype=bool)
    grooves[onset_steps] = True
    grooves = grooves.reshape(n_bars, steps_per_bar)  # (bars, steps per bar)
    hamming = (grooves[1:] != grooves[:-1]).sum(axis=1) / steps_per_bar  # (bars - 1,)
    return float(1.0 - hamming.mean())


def note_density(notes: np.ndarray) -> float:
    """Notes per beat over the piece's length (start to the last note's end)."""
    length = end_beat(notes)
    return len(notes) / length if length > 0 else math.nan


def inter_onset_intervals(notes: np.ndarray) -> np.ndarray:
    """Beats between successive distinct onsets (a chord is one onset), shape ``(k,)``."""
    return np.diff(np.unique(notes[:, ONSET]))


def durations(notes: np.ndarray) -> np.ndarray:
    """Note durations in beats, shape ``(n,)``."""
    return notes[:, DURATION].copy()


def length_histogram(values: np.ndarray) -> np.ndarray:
    """Share of values in each of ``LENGTH_CLASSES_BEATS`` (nearest class in log2 space)."""
    classes = np.log2(np.asarray(LENGTH_CLASSES_BEATS))
    values = np.asarray(values, dtype=np.float64)
    values = values[values > 0]
    hist = np.zeros(len(classes))
    if len(values) == 0:
        return hist
    index = np.clip(np.round(np.log2(values) - classes[0]), 0, len(classes) - 1).astype(int)
    np.add.at(hist, index, 1.0)
    return hist / hist.sum()


# ----------------------------------------------------------------------------- per piece

SCALAR_METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "pitch_range": pitch_range,
    "n_pitches_used": n_pitches_used,
    "n_pitch_classes_used": n_pitch_classes_used,
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "polyphony": polyphony,
    "polyphony_rate": polyphony_rate,
    "empty_beat_rate": empty_beat_rate,
    "groove_consistency": groove_consistency,
    "note_density": note_density,
    "mean_ioi": lambda n: float(inter_onset_intervals(n).mean()) if len(n) > 1 else math.nan,
    "mean_duration": lambda n: float(durations(n).mean()) if len(n) else math.nan,
}

# Vector features compared between sets (MGEval's histogram features).
VECTOR_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "pitch_class_histogram": pitch_class_histogram,
    "ioi_histogram": lambda n: length_histogram(inter_onset_intervals(n)),
    "duration_histogram": lambda n: length_histogram(durations(n)),
}


def piece_metrics(notes: np.ndarray) -> dict[str, float]:
    """Every scalar metric of one piece, by name."""
    return {name: float(fn(notes)) for name, fn in SCALAR_METRICS.items()}


# ----------------------------------------------------------------------------- set comparison


def _pairwise(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances: unique pairs within ``a``, or every pair across ``a`` and ``b``."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)  # (n, d)
    if b is None:
        d = np.linalg.norm(a[:, None, :] - a[None, :, :], axis=-1)  # (n, n)
        return d[np.triu_indices(len(a), k=1)]
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)  # (m, d)
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1).ravel()  # (n*m,)


def _kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    z = (grid[:, None] - samples[None, :]) / bandwidth  # (G, n)
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(samples) * bandwidth * math.sqrt(2 * math.pi))


def scott_bandwidth(samples: np.ndarray) -> float:
    """Scott's rule ``σ·n^(−1/5)`` (scipy's default for one dimension), floored."""
    samples = np.asarray(samples, dtype=np.float64)
    std = float(samples.std(ddof=1)) if len(samples) > 1 else 0.0
    return max(std * len(samples) ** (-1 / 5), KDE_MIN_BANDWIDTH)


def overlap_area(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> float:
    """Overlapping area ∫ min(p_a, p_b) of the Gaussian kernel density estimates of two samples.

    1 for identical distributions, 0 for disjoint ones. ``bandwidth`` (same for both) defaults
    to Scott's rule per sample (a sample without spread borrows the other's). NaN when a
    sample is empty.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        return math.nan
    bw_a = bandwidth if bandwidth is not None else scott_bandwidth(a)
    bw_b = bandwidth if bandwidth is not None else scott_bandwidth(b)
    # a sample of one value (or of equal values) has no spread of its own: borrow the other's,
    # else a single intra-set distance would be a spike that overlaps nothing
    if bw_a <= KDE_MIN_BANDWIDTH < bw_b:
        bw_a = bw_b
    elif bw_b <= KDE_MIN_BANDWIDTH < bw_a:
        bw_b = bw_a
    margin = KDE_GRID_MARGIN * max(bw_a, bw_b)
    lo = min(a.min(), b.min()) - margin
    hi = max(a.max(), b.max()) + margin
    grid = np.linspace(lo, hi, KDE_GRID_POINTS)
    low = np.minimum(_kde(a, grid, bw_a), _kde(b, grid, bw_b))
    return float(np.trapezoid(low, grid))


def mgeval(generated: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Compare one feature between sets (MGEval): intra-set vs inter-set distance densities.

    Parameters
    ----------
    generated, reference : (n, ...) and (m, ...) arrays, one feature value (scalar or vector)
        per piece; NaN rows are dropped.

    Returns
    -------
    ``oa``: overlapping area of the reference's intra-set distances and the inter-set distances
    (1 = generated pieces lie as close to the reference as reference pieces lie to each
    other); ``oa_generated``: the same with the generated set's intra-set distances; the mean
    of each distance sample.
    """
    gen = _finite_rows(generated)
    ref = _finite_rows(reference)
    intra_ref, intra_gen, inter = _pairwise(ref), _pairwise(gen), _pairwise(gen, ref)
    return {
        "oa": overlap_area(intra_ref, inter),
        "oa_generated": overlap_area(intra_gen, inter),
        "intra_reference_mean": float(intra_ref.mean()) if len(intra_ref) else math.nan,
        "intra_generated_mean": float(intra_gen.mean()) if len(intra_gen) else math.nan,
        "inter_mean": float(inter.mean()) if len(inter) else math.nan,
    }


def _finite_rows(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(len(values), -1)
    return values[np.isfinite(values).all(axis=1)]


def set_features(notes_list: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Every scalar metric and vector feature per piece: name → ``(n_pieces, ...)`` array."""
    out: dict[str, np.ndarray] = {}
    for name, fn in {**SCALAR_METRICS, **VECTOR_FEATURES}.items():
        out[name] = np.array([fn(n) for n in notes_list], dtype=np.float64)
    return out


# ----------------------------------------------------------------------------- Mittal et al.


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


def frame_overlaps(notes: np.ndarray, beats_per_bar: int = BEATS_PER_BAR) -> dict[str, list[float]]:
    """Gaussian overlap of pitch and of duration between each pair of adjacent frames.

    Frames are ``FRAME_BARS`` bars long and start every ``HOP_BARS`` bars; a note belongs to
    the frames its onset falls in. A pair is skipped when either frame has no note.
    """
    frame, hop = FRAME_BARS * beats_per_bar, HOP_BARS * beats_per_bar
    out: dict[str, list[float]] = {"pitch": [], "duration": []}
    if len(notes) == 0:
        return out
    last_onset = float(notes[:, ONSET].max())
    stats = []
    for start in np.arange(0.0, last_onset + 1e-9, hop):
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


def framewise_self_similarity(
    notes_list: Sequence[np.ndarray], beats_per_bar: int = BEATS_PER_BAR
) -> dict[str, dict[str, float]]:
    """Mittal et al. (2021) framewise self-similarity of a set of pieces.

    Parameters
    ----------
    notes_list : note arrays ``(n_i, 3)`` of (pitch, onset beats, duration beats) — see the
        module docstring; build them with :func:`pitch_onset_duration` or :func:`notes_from_fields`.
    beats_per_bar : bar length in beats (frames are 4 bars, hop 2 bars).

    Returns
    -------
    ``{"pitch": {"mean", "variance", "pairs"}, "duration": {...}}``: mean and (population)
    variance of the overlapping areas of all adjacent-frame pairs of all pieces, pooled.
    """
    pooled: dict[str, list[float]] = {"pitch": [], "duration": []}
    for notes in notes_list:
        for key, values in frame_overlaps(notes, beats_per_bar).items():
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
    beats_per_bar: int = BEATS_PER_BAR,
) -> dict[str, dict[str, float]]:
    """Mittal et al. Consistency and Variance of generated pieces against reference pieces.

    ``generated`` and ``reference`` are lists of note arrays (see
    :func:`framewise_self_similarity`). Per attribute (pitch, duration):
    Consistency = max(0, 1 − |μ_OA − μ_GT| / μ_GT), Variance = max(0, 1 − |σ²_OA − σ²_GT| / σ²_GT),
    where μ, σ² are the pooled framewise overlap statistics; 1 is a perfect match.
    """
    gen = framewise_self_similarity(generated, beats_per_bar)
    ref = framewise_self_similarity(reference, beats_per_bar)
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
