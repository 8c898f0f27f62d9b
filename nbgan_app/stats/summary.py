"""Per-cube statistics of a set of cubes, and their means and spreads (`nbgan stats --json`).

`summary` returns exactly the layout docs/design.md fixes for `stats --json`, one
block per statistic of `registry.STATISTICS`, in its order:

    {"box_size": L, "n_cubes": B,
     "psd":       {"k": [...],     "mean": [...], "std": [...]},
     "mass_hist": {"edges": [...], "mean": [...], "std": [...]},
     "peak_hist": {"edges": [...], "mean": [...], "std": [...]}}

k in h/Mpc, P in (Mpc/h)^d, histogram counts per cube. `std` is the sample
standard deviation over cubes (ddof = 1); with a single cube there is no
spread and it is reported as 0. Lists hold plain floats; values that are
not finite become null so the result is strict JSON.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.stats import registry
from nbgan_app.stats.batching import as_batch


class Statistic(NamedTuple):
    """One statistic over a batch: its axis ("k" centres or "edges") and per-cube samples (B, n_bins)."""

    axis_name: str
    axis: np.ndarray
    samples: np.ndarray


def cube_statistics(
    counts,
    box_size: float,
    psd_bins: str = "log",
    ndim: int | None = None,
    peak_boundary: str = "reflect",
) -> dict[str, Statistic]:
    """Every registry statistic of every cube of `counts` (one cube or a batch), keyed by name in registry order."""
    batch, _ = as_batch(counts, ndim)
    if box_size is None:
        raise InputError("the box size is unknown: the cube files carry no box_size attribute; pass --box-size L")
    options = registry.Options(box_size, psd_bins, batch.ndim - 1, peak_boundary)
    return {spec.name: Statistic(spec.axis, *spec.compute(batch, options)) for spec in registry.STATISTICS}


def spread(samples: np.ndarray) -> np.ndarray:
    """Standard deviation over cubes (ddof = 1), or zeros for a single cube."""
    if len(samples) < 2:
        return np.zeros(samples.shape[1:])
    return np.std(samples, axis=0, ddof=1)


def jsonable(values) -> list:
    """A float list for JSON, with NaN and infinities as null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).ravel()]


def describe(statistic: Statistic) -> dict:
    """`{axis_name: [...], "mean": [...], "std": [...]}` of one statistic."""
    return {
        statistic.axis_name: jsonable(statistic.axis),
        "mean": jsonable(statistic.samples.mean(axis=0)),
        "std": jsonable(spread(statistic.samples)),
    }


def summary(
    counts,
    box_size: float,
    psd_bins: str = "log",
    ndim: int | None = None,
    peak_boundary: str = "reflect",
) -> dict:
    """Means and spreads of the registry's statistics over a set of cubes, in the `stats --json` layout.

    Args:
        counts: one cube or a batch (batch axis first), 2-D or 3-D, counts.
        box_size: box side in Mpc/h.
        psd_bins: "log" (released) or "linear" (width k_F, Pylians).
        ndim: spatial dimensions when the shape alone is ambiguous.
        peak_boundary: "reflect" (released) or "wrap" (periodic).
    """
    batch, _ = as_batch(counts, ndim)
    stats = cube_statistics(batch, box_size, psd_bins, batch.ndim - 1, peak_boundary)
    result: dict = {"box_size": float(box_size), "n_cubes": int(len(batch))}
    result.update({name: describe(statistic) for name, statistic in stats.items()})
    return result
