"""One summary statistic, real against generated, with the fractional difference below."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual_plotext import PlotextPlot

from tui.samples import centres, fractional_difference

TITLES = {"psd": "P(k)", "mass_hist": "mass hist", "peak_hist": "peak hist"}


class StatPlot(PlotextPlot):
    """Top: real (cyan) and fake (orange) means; bottom: (fake - real) / real.

    The power spectrum is drawn as log10 P against log10 k (k in h/Mpc, P in
    (Mpc/h)^3); the histograms as log10 of the count per bin, over log10(counts + 1).
    Logarithms are taken here, of positive values only, rather than with plotext's
    log scales, which fail on some inputs (an empty plot, a zero line).
    """

    DEFAULT_CSS = """
    StatPlot { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)
        self.stat_name = name
        self.frac: list[float] = []

    def show(self, real: dict | None, fake: dict | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not real or not fake:
            plt.title(f"{TITLES[self.stat_name]}: no data")
            self.frac = []
            self.refresh()
            return
        x_real, x_fake = centres(real, self.stat_name), centres(fake, self.stat_name)
        self.frac = [float(v) for v in fractional_difference(real, fake)]
        log_x = self.stat_name == "psd"
        plt.subplots(2, 1)
        top = plt.subplot(1, 1)
        self._draw(top, x_real, real["mean"], "cyan", log_x)
        self._draw(top, x_fake, fake["mean"], "orange", log_x)
        top.title(TITLES[self.stat_name] + (" (log10 axes)" if log_x else " (log10 counts)"))
        bottom = plt.subplot(2, 1)
        n = min(len(x_real), len(self.frac))
        x, frac = np.asarray(x_real[:n], float), np.asarray(self.frac[:n])
        # bins where the real mean is 0 have no fractional difference
        shown = np.isfinite(frac) & ((x > 0) if log_x else True)
        if shown.any():
            xs = np.log10(x[shown]) if log_x else x[shown]
            bottom.plot(list(xs), list(frac[shown]), color="orange", marker="braille")
            bottom.plot([float(xs.min()), float(xs.max())], [0.0, 0.0], color="gray")
        bottom.title("frac. diff")
        self.refresh()

    @staticmethod
    def _draw(plot, x, y, color: str, log_x: bool) -> None:
        """Plot log10 y (and log10 x for the spectrum) where they exist: y > 0, x > 0."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        keep = (y > 0) & ((x > 0) if log_x else True) & np.isfinite(x) & np.isfinite(y)
        if keep.any():
            xs = np.log10(x[keep]) if log_x else x[keep]
            plot.plot(list(xs), list(np.log10(y[keep])), color=color, marker="braille")

    def render(self):
        """The plot, or a one-line message: a plotting error must never take the dashboard down."""
        try:
            return super().render()
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            return Text(f"{TITLES[self.stat_name]}: cannot draw ({exc})")
