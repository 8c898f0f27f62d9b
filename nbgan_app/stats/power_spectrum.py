"""Power spectrum of count fields on a periodic grid.

Conventions (docs/design.md, "Statistics"; the released evaluation and Pylians):

- Density contrast `delta = x / mean(x) - 1`, per cube.
- `P(k) = V |delta_k|^2 / N^(2d)` with `delta_k` the unnormalised discrete
  Fourier transform, `V = L^d` and `N` the grid side: k in h/Mpc, P in
  (Mpc/h)^3 for cubes and (Mpc/h)^2 for 2-D slices when L is in Mpc/h.
  No mass-assignment window correction and no shot-noise subtraction.
- Modes counted: the independent modes of a real field, as Pylians's
  `Pk_library.Pk` counts them. The half space of the real FFT (last axis
  0..N/2) is taken; in the planes where the last-axis index is 0 or the
  Nyquist index, where each mode's complex conjugate lies in the same plane,
  only one mode of each conjugate pair is kept (self-conjugate modes once).
  The k = 0 mode is excluded. All modes up to the grid's corner
  (|k| = sqrt(d) k_Nyquist) count; the Nyquist index is taken as +N/2.
- `bins="linear"`: bins of width k_F = 2 pi / L; a mode belongs to bin
  `floor(|k| / k_F)` (bin 0, the k = 0 mode alone, dropped), so the bins are
  [k_F, 2 k_F), [2 k_F, 3 k_F), ... . This is Pylians's convention.
- `bins="log"` (the released evaluation): 50 log-spaced edges from k_F to the
  largest |k|, the last bin closed. Bins holding no mode (a few at low k on
  small grids) are dropped, so every reported bin is finite.
- In both, the bin's k is the mean |k| of its modes, and P the mean of
  `V |delta_k|^2 / N^(2d)` over them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.stats.batching import as_batch, unbatch

BINNINGS = ("log", "linear")
RELEASED_LOG_EDGES = 50


class PowerSpectrum(NamedTuple):
    """k (h/Mpc) and n_modes per bin, power (Mpc/h)^d per bin (batch axis first for a batch)."""

    k: np.ndarray
    power: np.ndarray
    n_modes: np.ndarray


class ModeBins(NamedTuple):
    """Which bin each real-FFT mode falls in (`n_bins` for modes not counted), with bin k and counts."""

    index: np.ndarray
    k: np.ndarray
    n_modes: np.ndarray


def _signed_frequencies(n: int) -> np.ndarray:
    # Integer wavenumbers in units of k_F; the Nyquist index counts as +n/2 (Pylians).
    i = np.arange(n)
    return np.where(i > n // 2, i - n, i)


def _independent_modes(n: int, ndim: int) -> np.ndarray:
    """Boolean mask over the real-FFT layout: one mode per conjugate pair, k = 0 excluded."""
    shape = (n,) * (ndim - 1) + (n // 2 + 1,)
    keep = np.ones(shape, dtype=bool)
    plane = np.arange(n ** (ndim - 1)).reshape((n,) * (ndim - 1))
    conjugate = plane
    for axis in range(ndim - 1):  # index of (-i mod n) along each axis
        conjugate = np.roll(np.flip(conjugate, axis), 1, axis)
    first_of_pair = plane <= conjugate
    self_conjugate_planes = [0] + ([n // 2] if n % 2 == 0 else [])
    for j in self_conjugate_planes:
        keep[..., j] = first_of_pair
    keep[(0,) * ndim] = False
    return keep


def _mode_k(n: int, ndim: int) -> np.ndarray:
    """|k| in units of k_F over the real-FFT layout."""
    s = _signed_frequencies(n).astype(np.float64)
    k2 = np.zeros((n,) * (ndim - 1) + (n // 2 + 1,))
    for axis in range(ndim):
        values = s if axis < ndim - 1 else np.arange(n // 2 + 1, dtype=np.float64)
        k2 = k2 + (values**2).reshape([-1 if a == axis else 1 for a in range(ndim)])
    return np.sqrt(k2)


@functools.lru_cache(maxsize=4)
def mode_bins(n: int, ndim: int, box_size: float, bins: str) -> ModeBins:
    """Bin assignment of every real-FFT mode of an N^ndim grid (cached: it depends on shape only)."""
    if bins not in BINNINGS:
        raise InputError(f"Expected psd bins in {BINNINGS}. Received: bins={bins!r}")
    k = _mode_k(n, ndim)
    keep = _independent_modes(n, ndim)
    k_max = np.sqrt(ndim) * (n // 2)
    if bins == "linear":
        n_bins = int(np.floor(k_max))
        index = np.floor(k).astype(np.intp) - 1
    else:
        edges = np.geomspace(1.0, k_max, RELEASED_LOG_EDGES)
        n_bins = RELEASED_LOG_EDGES - 1
        index = np.minimum(np.searchsorted(edges, k, side="right") - 1, n_bins - 1)
    index = np.where(keep, index, n_bins).ravel()
    n_modes = np.bincount(index, minlength=n_bins + 1)[:n_bins]
    k_sum = np.bincount(index, weights=k.ravel(), minlength=n_bins + 1)[:n_bins]
    occupied = n_modes > 0
    # Renumber so that empty bins vanish and uncounted modes land in the last slot.
    renumber = np.full(n_bins + 1, occupied.sum(), dtype=np.intp)
    renumber[:n_bins][occupied] = np.arange(occupied.sum())
    k_fundamental = 2 * np.pi / box_size
    return ModeBins(
        index=renumber[index],
        k=k_sum[occupied] / n_modes[occupied] * k_fundamental,
        n_modes=n_modes[occupied],
    )


def density_contrast(counts: np.ndarray) -> np.ndarray:
    """`x / mean(x) - 1` in float32; an all-zero field has no contrast and is an error."""
    mean = float(np.mean(counts, dtype=np.float64))
    if mean <= 0:
        raise InputError("a field with zero mean count has no density contrast")
    return (np.asarray(counts, dtype=np.float32) / np.float32(mean)) - np.float32(1)


def power_spectrum(
    counts,
    box_size: float,
    bins: str = "log",
    ndim: int | None = None,
    workers: int = -1,
) -> PowerSpectrum:
    """Power spectrum of one field or a batch (batch axis first), 2-D or 3-D.

    Args:
        counts: particle counts, shape (N,)*d or (B,)+(N,)*d; see `batching`.
        box_size: box side L in Mpc/h.
        bins: "log" (released, 49 log bins) or "linear" (width k_F, Pylians).
        ndim: spatial dimensions when the shape alone is ambiguous.
        workers: threads for the FFT (scipy.fft; -1 = all cores).

    Returns:
        PowerSpectrum(k [h/Mpc], power [(Mpc/h)^d], n_modes); `power` has the
        batch axis first when a batch was given.
    """
    import scipy.fft  # here, not at the top: the dashboard reads the registry and starts faster without scipy

    batch, single = as_batch(counts, ndim)
    if box_size is None or not 0 < float(box_size) < np.inf:
        raise InputError(f"Expected a positive, finite box size in Mpc/h. Received: box_size={box_size}")
    d, n = batch.ndim - 1, batch.shape[1]
    binning = mode_bins(n, d, float(box_size), bins)
    n_bins = len(binning.k)
    norm = float(box_size) ** d / float(n) ** (2 * d)
    power = np.empty((len(batch), n_bins))
    for i, field in enumerate(batch):
        if not np.any(field):
            where = "the field" if single else f"field {i} of the batch"
            raise InputError(f"{where} holds no particles (zero mean count): it has no density contrast")
        delta_k = scipy.fft.rfftn(density_contrast(field), workers=workers)
        modulus2 = np.square(delta_k.real) + np.square(delta_k.imag)
        sums = np.bincount(binning.index, weights=modulus2.ravel(), minlength=n_bins + 1)
        power[i] = sums[:n_bins] / binning.n_modes * norm
    return PowerSpectrum(binning.k, unbatch(power, single), binning.n_modes)
