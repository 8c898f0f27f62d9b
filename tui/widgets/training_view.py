"""The live view of one run: losses, statistics and slices in tabs, with the training rate."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent, TabPane

from nbgan_app import rundir
from tui.runs import RunSummary, RunWatcher, file_key, steps_per_second
from tui.real_data import real_level_cube
from tui.samples import LATEST, LATEST_STATS, read_latest_stats
from tui.widgets.metrics_plot import MetricsPlot
from tui.widgets.slice_viewer import SliceViewer
from tui.widgets.stats_panel import StatsPanel


class TrainingView(Vertical):
    """Follows the selected run; `poll` redraws only what changed on disk."""

    DEFAULT_CSS = """
    TrainingView { height: 1fr; }
    TrainingView > #status { height: 1; background: $boost; padding: 0 1; }
    TrainingView TabbedContent, TrainingView ContentSwitcher, TrainingView TabPane { height: 1fr; }
    TrainingView TabPane { padding: 0; }
    """

    def __init__(self, plot_every_s: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.plot_every_s = plot_every_s  # a loss plot redraw costs ~50 ms: not on every refresh
        self._drawn_at: dict[str, float] = {}  # view name -> monotonic time of its last redraw
        self.run_dir: Path | None = None
        self.rate: float | None = None
        self._drawn: tuple = ()
        self._stats_key: tuple | None = ()

    def compose(self) -> ComposeResult:
        yield Static("select a run (up/down) or press n to start one", id="status")
        with TabbedContent(id="tabs"):
            with TabPane("1 Losses", id="losses"):
                yield MetricsPlot(id="metrics")
            with TabPane("2 Statistics", id="statistics"):
                yield StatsPanel(id="stats")
            with TabPane("3 Slices", id="slices"):
                yield SliceViewer(id="slices-view")

    def follow(self, run_dir: Path | None) -> None:
        if run_dir != self.run_dir:
            self.run_dir, self._drawn, self._stats_key = run_dir, (), ()
            self._drawn_at.clear()

    def due(self, view: str) -> bool:
        """Whether `view` may redraw now (at most every plot_every_s), and if so, note that it does."""
        now = time.monotonic()
        if now - self._drawn_at.get(view, -float("inf")) < self.plot_every_s:
            return False
        self._drawn_at[view] = now
        return True

    def poll(self, watcher: RunWatcher, summary: RunSummary | None) -> None:
        """Redraw from the run's files; cheap when nothing changed."""
        if self.run_dir is None or summary is None:
            self.query_one("#status", Static).update("no run selected: press n to start one")
            return
        records = watcher.tail(self.run_dir).records
        self.rate = steps_per_second(records, window=50) if summary.state == "running" else None
        rate = f"{self.rate:.3g} steps/s" if self.rate is not None else "- steps/s"
        status = f"[b]{summary.name}[/b]  M{summary.scale}  {summary.state}  step {summary.step}  {rate}"
        if summary.error:
            status += f"  [red]{summary.error}[/red]"
        self.query_one("#status", Static).update(status)
        drawn = (self.run_dir, len(records), records[-1]["step"] if records else None)
        shown = self.query_one("#tabs", TabbedContent).active == "losses"
        if drawn != self._drawn and shown and self.due("losses"):
            self._drawn = drawn
            self.query_one(MetricsPlot).show(records, title=f"{summary.name} losses")
        self._poll_samples()

    def _poll_samples(self) -> None:
        samples = self.run_dir / rundir.SAMPLES
        tab = self.query_one("#tabs", TabbedContent).active
        key = file_key(samples / LATEST_STATS)
        if tab == "statistics" and key != self._stats_key and self.due("statistics"):  # hidden: not drawn
            self._stats_key = key
            self.query_one(StatsPanel).show(read_latest_stats(self.run_dir))
        if tab == "slices" and self.due("slices"):
            latest = samples / LATEST
            self.query_one(SliceViewer).show(latest if latest.exists() else None, real_level_cube(self.run_dir))
