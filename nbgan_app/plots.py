"""Figures of the statistics of `stats.registry`, real against fake (thesis figures 5.2-5.11 style).

matplotlib is an optional extra (`pip install nbgan[plot]`): it is imported
only when a figure is drawn, and a missing install is an InputError that says
how to get it. Figures are built on `matplotlib.figure.Figure` with the Agg
canvas, never through pyplot, so drawing needs no display and no global state.
"""

from __future__ import annotations

import os

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file
from nbgan_app.stats import registry
from nbgan_app.stats.registry import StatisticSpec

REAL_COLOUR, FAKE_COLOUR = "tab:blue", "tab:orange"


def require_matplotlib() -> None:
    """Raise InputError when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("plotting needs matplotlib: pip install 'nbgan[plot]'") from None


def _array(values) -> np.ndarray:
    # JSON nulls (non-finite values) come back as NaN, which matplotlib skips.
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _draw_panel(top, bottom, block: dict, spec: StatisticSpec, ylabel: str) -> None:
    x = spec.bin_x(_array(block[spec.axis]))
    floor_value = np.inf
    for label, colour in (("real", REAL_COLOUR), ("fake", FAKE_COLOUR)):
        mean, std = _array(block[label]["mean"]), _array(block[label]["std"])
        if spec.log_y:
            mean[mean <= 0] = np.nan  # empty bins have no place on a log axis
            floor_value = min(floor_value, np.nanmin(mean, initial=np.inf))
        lower = np.clip(mean - std, floor_value / 3, None) if spec.log_y else mean - std
        top.plot(x, mean, color=colour, label=label)
        top.fill_between(x, lower, mean + std, color=colour, alpha=0.25, linewidth=0)
    if spec.log_y:
        top.set_yscale("log")
    if np.isfinite(floor_value):
        top.set_ylim(bottom=floor_value / 3)
    top.set_ylabel(ylabel)
    top.legend(loc="best", fontsize="small")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    if "floor" in block:
        spread = _array(block["floor"]["frac_diff_std"])
        bottom.fill_between(x, -spread, spread, color="grey", alpha=0.3, linewidth=0, label="real vs real ±1σ")
        bottom.legend(loc="best", fontsize="small")
    frac = _array(block["frac_diff"])
    bottom.plot(x, frac, color=FAKE_COLOUR)
    # Tails of the histograms can differ by orders of magnitude; keep the useful range readable.
    bottom.set_ylim(-1.05, float(np.clip(np.nanmax(np.abs(frac), initial=0.0) * 1.1, 0.2, 2.0)))
    bottom.set_ylabel("(fake - real) / real")
    bottom.set_xlabel(spec.x_label)
    if spec.log_x:
        top.set_xscale("log")
        bottom.set_xscale("log")


def compare_figure(result: dict):
    """A matplotlib Figure of a `compare` result: one column per statistic, its means above, frac. difference below."""
    require_matplotlib()
    from matplotlib.figure import Figure

    specs = registry.STATISTICS
    figure = Figure(figsize=(5 * len(specs), 6), layout="constrained")
    axes = figure.subplots(2, len(specs), sharex="col", gridspec_kw={"height_ratios": (3, 1)}, squeeze=False)
    for column, spec in enumerate(specs):
        _draw_panel(axes[0, column], axes[1, column], result[spec.name], spec, spec.y_label_for(result.get("ndim", 3)))
    figure.suptitle(f"{result['n_fake']} fake against {result['n_real']} real cubes, box {result['box_size']:g} Mpc/h")
    return figure


def save_compare_plot(result: dict, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Draw `compare_figure(result)` to a PNG at `path`, atomically."""
    figure = compare_figure(result)
    with atomic_file(path, overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
