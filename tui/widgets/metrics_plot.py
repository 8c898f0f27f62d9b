"""Loss curves against step: critic loss, generator loss, gradient penalty, Wasserstein estimate."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from tui.runs import LOSSES

COLORS = {"critic_loss": "red", "generator_loss": "blue", "gradient_penalty": "magenta", "wasserstein": "green"}
LABELS = {"critic_loss": "critic", "generator_loss": "generator", "gradient_penalty": "GP", "wasserstein": "W"}


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
                plt.plot(xs, self.series[name], label=LABELS[name], color=COLORS[name], marker="braille")
        if not records:
            plt.title(f"{title}: no metrics yet" if title else "no metrics yet")
        self.refresh()
