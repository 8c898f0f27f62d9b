"""The study's figures: fractional PSD error per k bin, and quality against time per cube.

Built on `matplotlib.figure.Figure` with the Agg canvas (never pyplot), like
`nbgan_app.plots`; every file is written through `outputs.atomic_file`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbgan_app.outputs import atomic_file
from nbgan_app.plots import require_matplotlib
from nbgan_app.stats import registry

# The statistics whose median |fractional error| the study tabulates and plots against time.
ERROR_STATISTICS = ("psd", "mass_hist")


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def save(figure, path: Path) -> Path:
    with atomic_file(path, overwrite=True) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def psd_error_figure(rows: list[dict], title: str):
    """(fake - real) / real of the PSD against k for each row, one panel per level side, floor shaded."""
    require_matplotlib()
    from matplotlib.figure import Figure

    psd_spec = registry.get("psd")
    sides = sorted({r["side"] for r in rows}, reverse=True)
    figure = Figure(figsize=(6.5 * len(sides), 4.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(sides), squeeze=False)[0])
    for ax, side in zip(axes, sides):
        group = [r for r in rows if r["side"] == side]
        psd = group[0]["scores"]["psd"]
        k = _array(psd["k"])
        spread = _array(psd["floor"]["frac_diff_std"])
        ax.fill_between(k, -spread, spread, color="grey", alpha=0.3, linewidth=0, label="real vs real ±1σ")
        for r in group:
            ax.plot(k, _array(r["scores"]["psd"]["frac_diff"]), label=r["label"])
        ax.axhline(0.0, color="black", linewidth=0.8)
        if psd_spec.log_x:
            ax.set_xscale("log")
        ax.set_ylim(-1.05, 1.5)
        ax.set_xlabel(psd_spec.x_label)
        ax.set_ylabel(f"(fake - real) / real, {psd_spec.short_title}")
        ax.set_title(f"{side}^3")
        ax.legend(loc="best", fontsize="small")
    figure.suptitle(title)
    return figure


def quality_time_figure(rows: list[dict]):
    """Median |fractional error| of each of ERROR_STATISTICS against seconds per cube (log-log)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    specs = [registry.get(name) for name in ERROR_STATISTICS]
    figure = Figure(figsize=(5.5 * len(specs), 4.2), layout="constrained")
    axes = figure.subplots(1, len(specs), squeeze=False)[0]
    for ax, spec in zip(axes, specs):
        name = spec.name
        floor = rows[0]["scores"][name]["floor"]["median_abs_frac_diff"]["mean"]
        for r in rows:
            if r["seconds_per_cube"] is not None:
                ax.scatter(r["seconds_per_cube"], r["scores"][name]["median_abs_frac_diff"], s=45, label=r["label"])
        if floor is not None:
            ax.axhline(floor, color="grey", linestyle="--", label="real vs real floor")
        ax.legend(loc="best", fontsize="small")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("seconds per cube (this machine)")
        ax.set_ylabel(f"median |fractional error|, {spec.title}")
    figure.suptitle("Quality against cost per cube")
    return figure
