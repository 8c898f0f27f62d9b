"""The summary statistics, each described once: its JSON key, titles, axis, labels and computation.

Every consumer (`summary`, `compare`, the figures, the score tables, the study
report and the dashboard) iterates `STATISTICS` in its order, which is the
key order of the JSON results. Adding a statistic is one `StatisticSpec`
here; nothing else names the statistics one by one. Consumers read
`STATISTICS` (or `names()`, `get()`) when called and never copy it at import,
so that the tests can swap in a longer tuple and see it everywhere.

Conventions shared by every entry:

- `compute(batch, options)` takes counts of shape (B, N, ..., N) with
  `options.ndim` spatial axes and returns `(axis, samples)`: the x axis and
  the per-cube values of shape (B, n_bins).
- `axis` is the JSON key of that x axis: "k" holds one x per bin (bin
  centres, k in h/Mpc), "edges" holds n_bins + 1 bin edges.
- `y_label` may hold "{d}", the number of spatial dimensions (P(k) is in
  (Mpc/h)^d).
- `log_x`, `log_y`: the axes are drawn logarithmically (only positive values
  are shown on a log axis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from nbgan_app.stats.histograms import mass_histogram, peak_histogram
from nbgan_app.stats.power_spectrum import power_spectrum

AXES = ("k", "edges")


class Options(NamedTuple):
    """What the statistics of one set of cubes share.

    box_size: box side L in Mpc/h; psd_bins: "log" or "linear"; ndim: spatial
    dimensions (2 or 3); peak_boundary: "reflect" or "wrap".
    """

    box_size: float
    psd_bins: str = "log"
    ndim: int = 3
    peak_boundary: str = "reflect"


@dataclass(frozen=True)
class StatisticSpec:
    """One statistic: `name` is its key in JSON results and in the dashboard's widget ids.

    `title` names it in prose and figure labels, `short_title` heads its
    dashboard plot, `label` heads table columns.
    """

    name: str
    title: str
    short_title: str
    label: str
    axis: str
    x_label: str
    y_label: str
    log_x: bool
    log_y: bool
    compute: Callable[[np.ndarray, Options], tuple[np.ndarray, np.ndarray]]

    def __post_init__(self):
        if self.axis not in AXES:
            raise ValueError(f"statistic {self.name!r}: axis must be one of {AXES}, got {self.axis!r}")

    def y_label_for(self, ndim: int) -> str:
        """`y_label` with "{d}" replaced by the number of spatial dimensions."""
        return self.y_label.replace("{d}", str(ndim))

    def bin_x(self, axis) -> np.ndarray:
        """The x of each bin: the "k" axis as it is, or the midpoints of consecutive "edges"."""
        values = np.asarray(axis, dtype=np.float64)
        return values if self.axis == "k" else (values[:-1] + values[1:]) / 2


def _power_spectrum(batch: np.ndarray, options: Options) -> tuple[np.ndarray, np.ndarray]:
    psd = power_spectrum(batch, options.box_size, bins=options.psd_bins, ndim=options.ndim)
    return psd.k, psd.power


def _mass_histogram(batch: np.ndarray, options: Options) -> tuple[np.ndarray, np.ndarray]:
    return mass_histogram(batch, ndim=options.ndim)


def _peak_histogram(batch: np.ndarray, options: Options) -> tuple[np.ndarray, np.ndarray]:
    return peak_histogram(batch, ndim=options.ndim, boundary=options.peak_boundary)


STATISTICS: tuple[StatisticSpec, ...] = (
    StatisticSpec(
        name="psd", title="power spectrum", short_title="P(k)", label="PSD", axis="k",
        x_label="k [h/Mpc]", y_label="P(k) [(Mpc/h)^{d}]", log_x=True, log_y=True,
        compute=_power_spectrum,
    ),
    StatisticSpec(
        name="mass_hist", title="mass histogram", short_title="mass hist", label="mass", axis="edges",
        x_label="log10(x + 1)", y_label="voxels per cube", log_x=False, log_y=True,
        compute=_mass_histogram,
    ),
    StatisticSpec(
        name="peak_hist", title="peak histogram", short_title="peak hist", label="peak", axis="edges",
        x_label="ln(p + e)", y_label="peaks per cube", log_x=False, log_y=True,
        compute=_peak_histogram,
    ),
)


def names() -> tuple[str, ...]:
    """The statistics' JSON keys, in result order."""
    return tuple(spec.name for spec in STATISTICS)


def get(name: str) -> StatisticSpec:
    """The statistic called `name`; KeyError naming the known ones otherwise."""
    for spec in STATISTICS:
        if spec.name == name:
            return spec
    raise KeyError(f"no statistic {name!r}; known: {', '.join(names())}")
