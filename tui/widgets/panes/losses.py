"""The losses tab: metrics.jsonl's loss curves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import TabPane

from tui.widgets.metrics_plot import MetricsPlot
from tui.widgets.panes.pane import RunUpdate


class LossesPane(TabPane):
    def __init__(self):
        super().__init__("1 Losses", id="losses")

    def compose(self) -> ComposeResult:
        yield MetricsPlot(id="metrics")

    def source_key(self, run: RunUpdate) -> tuple:
        return len(run.records), run.records[-1]["step"] if run.records else None

    def refresh_from(self, run: RunUpdate) -> None:
        self.query_one(MetricsPlot).show(run.records, title=f"{run.summary.name} losses")
