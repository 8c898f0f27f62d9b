"""Mass and peak histograms of count fields (the released evaluation's bins by default).

- Mass histogram: the histogram of `log10(x + 1)` over all voxels. Released
  bins: 20 equal bins over [log10 2, log10(250884 / 3)]; values outside are
  folded into the end bins (so empty voxels land in the first bin and the
  counts of each field sum to its voxel count).
- Peak histogram: a voxel is a peak when it equals the maximum of its 5^d
  neighbourhood and that neighbourhood is not flat (max - min > threshold,
  default 0). Boundaries reflect (`"reflect"`, as the release, scipy's
  default) or wrap (`"wrap"`, periodic, right for a periodic simulation box).
  Peak values p map to `ln(p + e)`, histogrammed in 20 equal bins over
  [1.5, 13]. Values outside are dropped, not folded, as `np.histogram` does
  (the release states folding for the mass histogram only): a peak of one
  count, ln(1 + e) = 1.31, is therefore not counted.

Counts per bin are raw counts per field (not normalised).
"""

from __future__ import annotations

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.stats.batching import as_batch, unbatch

MASS_EDGES = np.linspace(np.log10(2.0), np.log10(250884.0 / 3.0), 21)
PEAK_EDGES = np.linspace(1.5, 13.0, 21)
PEAK_NEIGHBOURHOOD = 5
BOUNDARIES = ("reflect", "wrap")


def _check_edges(edges) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise InputError(f"Expected increasing histogram edges. Received: edges={edges.tolist()}")
    return edges


def binned_counts(values: np.ndarray, edges: np.ndarray, fold: bool) -> np.ndarray:
    """Counts of `values` in the bins of `edges` (last bin closed); out-of-range folded or dropped."""
    # One comparison pass per edge beats np.searchsorted several times over
    # for the ~20 edges used here: at_least[i] = #(values >= edges[i]).
    at_least = np.array([np.count_nonzero(values >= edge) for edge in edges], dtype=np.float64)
    above_last = float(np.count_nonzero(values > edges[-1]))
    hist = at_least[:-1] - at_least[1:]
    hist[-1] += at_least[-1] - above_last  # values equal to the last edge
    if fold:
        hist[0] += values.size - at_least[0]
        hist[-1] += above_last
    return hist


def mass_histogram(counts, edges=None, ndim: int | None = None, fold: bool = True):
    """Histogram of `log10(x + 1)` per field.

    Args:
        counts: one field or a batch (batch axis first), 2-D or 3-D.
        edges: bin edges in log10(x + 1); default the released 20 bins.
        fold: fold values outside the edges into the end bins (released).

    Returns:
        (edges, histogram): histogram of shape (n_bins,) or (B, n_bins).
    """
    batch, single = as_batch(counts, ndim)
    edges = MASS_EDGES if edges is None else _check_edges(edges)
    hist = np.stack([binned_counts(np.log10(field.astype(np.float64) + 1.0), edges, fold) for field in batch])
    return edges, unbatch(hist, single)


def find_peaks(field: np.ndarray, boundary: str = "reflect", size: int = PEAK_NEIGHBOURHOOD, threshold: float = 0.0):
    """Boolean mask of the local maxima of one field over a `size`^d neighbourhood.

    A voxel is a peak when it equals its neighbourhood's maximum and the
    neighbourhood is not flat (max - min > threshold). Plateau voxels that
    tie for a maximum all count.
    """
    if boundary not in BOUNDARIES:
        raise InputError(f"Expected a peak boundary in {BOUNDARIES}. Received: boundary={boundary!r}")
    import scipy.ndimage  # here, not at the top: the dashboard reads the registry and starts faster without scipy

    highest = scipy.ndimage.maximum_filter(field, size=size, mode=boundary)
    lowest = scipy.ndimage.minimum_filter(field, size=size, mode=boundary)
    return (field == highest) & (highest - lowest > threshold)


def peak_values(field: np.ndarray, boundary: str = "reflect", threshold: float = 0.0) -> np.ndarray:
    """Counts at the peaks of one field (2-D or 3-D), in memory order."""
    return field[find_peaks(field, boundary, threshold=threshold)]


def peak_histogram(
    counts,
    edges=None,
    ndim: int | None = None,
    boundary: str = "reflect",
    fold: bool = False,
    threshold: float = 0.0,
):
    """Histogram of `ln(p + e)` over the peaks p of each field.

    Args:
        counts: one field or a batch (batch axis first), 2-D or 3-D.
        edges: bin edges in ln(p + e); default the released 20 bins over [1.5, 13].
        boundary: "reflect" (released) or "wrap" (periodic).
        fold: fold out-of-range values into the end bins (default: drop them).
        threshold: a neighbourhood with max - min <= threshold is flat.

    Returns:
        (edges, histogram): histogram of shape (n_bins,) or (B, n_bins).
    """
    batch, single = as_batch(counts, ndim)
    edges = PEAK_EDGES if edges is None else _check_edges(edges)
    hist = np.stack(
        [
            binned_counts(np.log(peak_values(field, boundary, threshold).astype(np.float64) + np.e), edges, fold)
            for field in batch
        ]
    )
    return edges, unbatch(hist, single)
