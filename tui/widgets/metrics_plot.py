"""Loss curves against step: critic loss, generator loss, gradient penalty, Wasserstein estimate."""

from __future__ import annotations

import numpy as np
from textual_plotext import PlotextPlot

from nbgan_app.rundir import LOSSES

COLORS = {"critic_loss": "red", "generator_loss": "blue", "gradient_penalty": "magenta", "wasserstein": "green"}
LABELS = {"critic_loss": "critic", "generator_loss": "generator", "gradient_penalty": "GP", "wasserstein": "W"}


def bucket_means(xs: list[float], ys: list[float], most: int) -> tuple[list[float], list[float]]:
    """At most `most` points: means over consecutive buckets of steps and values.

    plotext draws every segment, so its cost grows with the points; a braille plot
    shows 2 points per column, so more than that is invisible work. Means (not every
    n-th point) keep a noisy loss's level honest.
    """
    if len(xs) <= most:
        return xs, ys
    starts = np.linspace(0, len(xs), most + 1).astype(int)[:-1]
    sizes = np.diff(np.append(starts, len(xs)))
    means = [np.add.reduceat(np.asarray(v, float), starts) / sizes for v in (xs, ys)]
    return means[0].tolist(), means[1].tolist()


class MetricsPlot(PlotextPlot):
    """All four loss series of metrics.jsonl on one plotext plot, redrawn when records change."""

    DEFAULT_CSS = """
    MetricsPlot { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps: list[float] = []
        self.series: dict[str, list[float]] = {}
        self.message = "no metrics yet"

    def show(self, records: list[dict], title: str = "") -> None:
        """Plot `records` (metrics.jsonl dicts); missing keys are simply left out of a series."""
        self.steps = [r["step"] for r in records]
        self.series = {name: [r[name] for r in records if isinstance(r.get(name), (int, float))] for name in LOSSES}
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title or "losses")
        plt.xlabel("step")
        self.message = "" if records else "no metrics yet"
        for name in LOSSES:
            xs = [r["step"] for r in records if isinstance(r.get(name), (int, float))]
            if xs:
                xs, ys = bucket_means(xs, self.series[name], max(50, 2 * self.size.width))
                plt.plot(xs, ys, label=LABELS[name], color=COLORS[name], marker="braille")
        if not records:
            plt.title(f"{title}: no metrics yet" if title else "no metrics yet")
        self.refresh()
