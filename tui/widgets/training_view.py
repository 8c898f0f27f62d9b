"""The live view of one run: its tabs (losses, statistics, slices) under a status line with the training rate."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent

from nbgan_app.scales import title_of
from tui.runs import RunSummary, RunWatcher, steps_per_second
from tui.widgets.panes import PANES, RunPane, RunUpdate

_NEVER = object()  # a pane's key before its first draw: unequal to every key, None included


class TrainingView(Vertical):
    """Follows the selected run; `poll` redraws the shown tab only when what it draws from changed."""

    DEFAULT_CSS = """
    TrainingView { height: 1fr; }
    TrainingView > #status { height: 1; background: $boost; padding: 0 1; }
    TrainingView TabbedContent, TrainingView ContentSwitcher, TrainingView TabPane { height: 1fr; }
    TrainingView TabPane { padding: 0; }
    """

    def __init__(self, plot_every_s: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.plot_every_s = plot_every_s  # a loss plot redraw costs ~50 ms: not on every refresh
        self.panes: list[RunPane] = [pane() for pane in PANES]
        self._drawn_at: dict[str, float] = {}  # pane id -> monotonic time of its last redraw
        self._drawn: dict[str, object] = {}  # pane id -> the source key it was last drawn from
        self.run_dir: Path | None = None
        self.rate: float | None = None

    def compose(self) -> ComposeResult:
        yield Static("select a run (up/down) or press n to start one", id="status")
        with TabbedContent(id="tabs"):
            yield from self.panes

    def follow(self, run_dir: Path | None) -> None:
        if run_dir != self.run_dir:
            self.run_dir = run_dir
            self._drawn.clear()
            self._drawn_at.clear()

    def due(self, pane: str) -> bool:
        """Whether `pane` may redraw now (at most every plot_every_s), and if so, note that it does."""
        now = time.monotonic()
        if now - self._drawn_at.get(pane, -float("inf")) < self.plot_every_s:
            return False
        self._drawn_at[pane] = now
        return True

    def poll(self, watcher: RunWatcher, summary: RunSummary | None) -> None:
        """Redraw from the run's files; cheap when nothing changed."""
        if self.run_dir is None or summary is None:
            self.query_one("#status", Static).update("no run selected: press n to start one")
            return
        run = RunUpdate(summary, watcher.tail(self.run_dir).records)
        self.show_status(run)
        shown = self.query_one("#tabs", TabbedContent).active
        for pane in self.panes:
            if pane.id != shown:
                continue  # hidden tabs are drawn when shown, not while training writes
            key = pane.source_key(run)
            if key != self._drawn.get(pane.id, _NEVER) and self.due(pane.id):
                self._drawn[pane.id] = key
                pane.refresh_from(run)

    def show_status(self, run: RunUpdate) -> None:
        summary = run.summary
        self.rate = steps_per_second(run.records, window=50) if summary.state == "running" else None
        rate = f"{self.rate:.3g} steps/s" if self.rate is not None else "- steps/s"
        status = f"[b]{summary.name}[/b]  {title_of(summary.scale)}  {summary.state}  step {summary.step}  {rate}"
        if summary.error:
            status += f"  [red]{summary.error}[/red]"
        self.query_one("#status", Static).update(status)
