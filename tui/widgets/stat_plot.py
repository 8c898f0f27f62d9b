"""One summary statistic, real against generated, with the fractional difference below."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual_plotext import PlotextPlot

from nbgan_app.stats import registry
from tui.samples import centres, fractional_difference


class StatPlot(PlotextPlot):
    """Top: real (cyan) and fake (orange) means; bottom: (fake - real) / real.

    The axes the registry marks `log_x`/`log_y` are drawn as log10 of the values
    (the power spectrum: log10 P against log10 k, k in h/Mpc, P in (Mpc/h)^3; the
    histograms: log10 of the count per bin over the bin centres). Logarithms are
    taken here, of positive values only, rather than with plotext's log scales,
    which fail on some inputs (an empty plot, a zero line).
    """

    DEFAULT_CSS = """
    StatPlot { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)
        self.stat_name = name
        self.spec = registry.get(name)
        self.frac: list[float] = []

    def show(self, real: dict | None, fake: dict | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not real or not fake:
            plt.title(f"{self.spec.short_title}: no data")
            self.frac = []
            self.refresh()
            return
        x_real, x_fake = centres(real, self.stat_name), centres(fake, self.stat_name)
        self.frac = [float(v) for v in fractional_difference(real, fake)]
        log_x, log_y = self.spec.log_x, self.spec.log_y
        plt.subplots(2, 1)
        top = plt.subplot(1, 1)
        self._draw(top, x_real, real["mean"], "cyan", log_x, log_y)
        self._draw(top, x_fake, fake["mean"], "orange", log_x, log_y)
        top.title(self.spec.short_title + _log_note(log_x, log_y))
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
    def _draw(plot, x, y, color: str, log_x: bool, log_y: bool) -> None:
        """Plot y against x, each as log10 where asked, at the points where that log exists."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        keep = ((y > 0) if log_y else True) & ((x > 0) if log_x else True) & np.isfinite(x) & np.isfinite(y)
        if keep.any():
            xs = np.log10(x[keep]) if log_x else x[keep]
            ys = np.log10(y[keep]) if log_y else y[keep]
            plot.plot(list(xs), list(ys), color=color, marker="braille")

    def render(self):
        """The plot, or a one-line message: a plotting error must never take the dashboard down."""
        try:
            return super().render()
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            return Text(f"{self.spec.short_title}: cannot draw ({exc})")


def _log_note(log_x: bool, log_y: bool) -> str:
    """The title's note of which axes are logarithmic; the y of a linear-x statistic is a count per bin."""
    if log_x and log_y:
        return " (log10 axes)"
    if log_y:
        return " (log10 counts)"
    return " (log10 x)" if log_x else ""
