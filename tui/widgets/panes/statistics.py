"""The statistics tab: the trainer's latest evaluation, real against generated."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import TabPane

from nbgan_app import rundir
from tui.runs import file_key
from tui.samples import read_latest_stats
from tui.widgets.panes.pane import RunUpdate
from tui.widgets.stats_panel import StatsPanel


class StatisticsPane(TabPane):
    def __init__(self):
        super().__init__("2 Statistics", id="statistics")

    def compose(self) -> ComposeResult:
        yield StatsPanel(id="stats")

    def source_key(self, run: RunUpdate):
        return file_key(run.path / rundir.SAMPLES / rundir.LATEST_STATS)

    def refresh_from(self, run: RunUpdate) -> None:
        self.query_one(StatsPanel).show(read_latest_stats(run.path))
