"""One summary statistic, real against generated, with the fractional difference below."""

from __future__ import annotations

import numpy as np
from textual_plotext import PlotextPlot

from tui.samples import centres, fractional_difference

TITLES = {"psd": "P(k)", "mass_hist": "mass hist", "peak_hist": "peak hist"}


class StatPlot(PlotextPlot):
    """Top: real (cyan) and fake (orange) means; bottom: (fake - real) / real.

    The power spectrum is drawn on log-log axes (k in h/Mpc, P in (Mpc/h)^3);
    the histograms on a log count axis, over log10(counts + 1).
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
        plt.subplots(2, 1)
        top = plt.subplot(1, 1)
        self._draw(top, x_real, real["mean"], "real", "cyan")
        self._draw(top, x_fake, fake["mean"], "fake", "orange")
        top.title(TITLES[self.stat_name])
        if self.stat_name == "psd":
            top.xscale("log")
        top.yscale("log")
        bottom = plt.subplot(2, 1)
        n = min(len(x_real), len(self.frac))
        frac = np.asarray(self.frac[:n])
        shown = np.isfinite(frac)  # bins where the real mean is 0 have no fractional difference
        if shown.any():
            bottom.plot(list(x_real[:n][shown]), list(frac[shown]), color="orange", marker="braille")
        bottom.hline(0.0, "gray")
        if self.stat_name == "psd":
            bottom.xscale("log")
        bottom.title("frac. diff")
        self.refresh()

    @staticmethod
    def _draw(plot, x, y, label: str, color: str) -> None:
        """Plot only positive values: log axes cannot show zeros (empty bins)."""
        x, y = np.asarray(x, float), np.asarray(y, float)[: len(x)]
        keep = y > 0
        if keep.any():
            plot.plot(list(x[: len(y)][keep]), list(y[keep]), color=color, marker="braille")
