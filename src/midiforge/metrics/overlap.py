"""MGEval's set comparison (Yang & Lerch, 2020): densities of distances and their overlap.

For one feature (a scalar or vector per piece), the intra-set distances (every pair of pieces
within a set) and the inter-set distances (every generated piece against every reference
piece) are smoothed into Gaussian kernel density estimates, and their overlapping area
∫ min(p, q) dx says how alike the two distributions are.

Where the integral runs is a convention, chosen with ``bounds``:

``"minmax"`` (default)
    between the smallest and the largest distance of the two samples, as MGEval's code does
    (``scipy.integrate.quad`` from ``min(A ∪ B)`` to ``max(A ∪ B)`` in ``mgeval/utils.py``).
    The kernel tails outside the data are cut, so two identical samples overlap by less than 1.
``"full"``
    over the whole line (the data's range widened by ``KDE_GRID_MARGIN`` bandwidths, past which
    the kernels are nil): the overlap of the densities themselves, 1 for identical samples.
"""

from __future__ import annotations

import math

import numpy as np

from midiforge.errors import choice_error

OVERLAP_BOUNDS = ("minmax", "full")
DEFAULT_OVERLAP_BOUNDS = "minmax"
BOUNDS_DESCRIPTIONS = {
    "minmax": "integrated between the smallest and the largest distance, as MGEval's code does",
    "full": "integrated over the whole line (the densities' own overlap, 1 for equal samples)",
}
KDE_GRID_POINTS = 2001  # integration grid of the overlapping area
KDE_MIN_BANDWIDTH = 1e-3  # bandwidth floor when every distance is equal (a point mass)
KDE_GRID_MARGIN = 5.0  # with bounds="full" the grid extends this many bandwidths past the data
KDE_SAMPLES_PER_BLOCK = 4096  # density sums run over blocks of samples to bound memory


def _rows(values: np.ndarray) -> np.ndarray:
    """One row per piece, ``(n, d)``: a scalar feature becomes one column (n may be 0)."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), int(np.prod(values.shape[1:], dtype=int)))


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances: unique pairs within ``a``, or every pair across ``a`` and ``b``."""
    a = _rows(a)  # (n, d)
    if b is None:
        d = np.linalg.norm(a[:, None, :] - a[None, :, :], axis=-1)  # (n, n)
        return d[np.triu_indices(len(a), k=1)]
    b = _rows(b)  # (m, d)
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1).ravel()  # (n*m,)


def _kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    density = np.zeros(len(grid))
    for i in range(0, len(samples), KDE_SAMPLES_PER_BLOCK):
        z = (grid[:, None] - samples[None, i : i + KDE_SAMPLES_PER_BLOCK]) / bandwidth  # (G, b)
        density += np.exp(-0.5 * z**2).sum(axis=1)
    return density / (len(samples) * bandwidth * math.sqrt(2 * math.pi))


def scott_bandwidth(samples: np.ndarray) -> float:
    """Scott's rule ``σ·n^(−1/5)`` (scipy's default for one dimension), floored."""
    samples = np.asarray(samples, dtype=np.float64)
    std = float(samples.std(ddof=1)) if len(samples) > 1 else 0.0
    return max(std * len(samples) ** (-1 / 5), KDE_MIN_BANDWIDTH)


def _check_bounds(bounds: str) -> None:
    if bounds not in OVERLAP_BOUNDS:
        raise choice_error("overlap bounds", bounds, OVERLAP_BOUNDS)


def overlap_area(
    a: np.ndarray,
    b: np.ndarray,
    bandwidth: float | None = None,
    bounds: str = DEFAULT_OVERLAP_BOUNDS,
) -> float:
    """Overlapping area ∫ min(p_a, p_b) of the Gaussian kernel density estimates of two samples.

    ``bandwidth`` (same for both) defaults to Scott's rule per sample (a sample without spread
    borrows the other's); ``bounds`` is where the integral runs (module docstring). NaN when a
    sample is empty, and with ``"minmax"`` when every value of both is the same (the interval
    is empty; scipy's KDE, which MGEval uses, cannot even be built then).
    """
    _check_bounds(bounds)
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
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if bounds == "full":
        margin = KDE_GRID_MARGIN * max(bw_a, bw_b)
        lo, hi = lo - margin, hi + margin
    elif hi <= lo:
        return math.nan
    grid = np.linspace(lo, hi, KDE_GRID_POINTS)
    low = np.minimum(_kde(a, grid, bw_a), _kde(b, grid, bw_b))
    return float(np.trapezoid(low, grid))


def _finite_rows(values: np.ndarray) -> np.ndarray:
    values = _rows(values)
    return values[np.isfinite(values).all(axis=1)]


def mgeval(
    generated: np.ndarray, reference: np.ndarray, bounds: str = DEFAULT_OVERLAP_BOUNDS
) -> dict[str, float]:
    """Compare one feature between sets (MGEval): intra-set vs inter-set distance densities.

    Parameters
    ----------
    generated, reference : (n, ...) and (m, ...) arrays, one feature value (scalar or vector)
        per piece; NaN rows are dropped.
    bounds : where the overlap integral runs, ``"minmax"`` (MGEval's code) or ``"full"``.

    Returns
    -------
    ``oa``: overlapping area of the reference's intra-set distances and the inter-set distances
    (1 = generated pieces lie as close to the reference as reference pieces lie to each
    other); ``oa_generated``: the same with the generated set's intra-set distances; the mean
    of each distance sample.
    """
    gen = _finite_rows(generated)
    ref = _finite_rows(reference)
    intra_ref, intra_gen = pairwise_distances(ref), pairwise_distances(gen)
    inter = pairwise_distances(gen, ref)
    return {
        "oa": overlap_area(intra_ref, inter, bounds=bounds),
        "oa_generated": overlap_area(intra_gen, inter, bounds=bounds),
        "intra_reference_mean": float(intra_ref.mean()) if len(intra_ref) else math.nan,
        "intra_generated_mean": float(intra_gen.mean()) if len(intra_gen) else math.nan,
        "inter_mean": float(inter.mean()) if len(inter) else math.nan,
    }
