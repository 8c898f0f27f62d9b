"""The run list: one row per run directory, refreshed in place."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.runs import RunSummary, format_best, format_scores
from tui.samples import format_errors

STATE_STYLES = {"running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red",
                "error": "bold red"}
COLUMNS = ("run", "scale", "config", "backend", "device", "step", "best", "state", "median error / problem")


class RunList(DataTable):
    """A DataTable of RunSummary rows, keyed by run name so the cursor survives refreshes."""

    DEFAULT_CSS = """
    RunList {
        height: auto;
        max-height: 8;
        border: round $primary-darken-2;
        border-title-color: $text;
    }
    RunList:focus { border: round $accent; }
    """

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.summaries: dict[str, RunSummary] = {}
        self.border_title = "Runs"

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, summaries: list[RunSummary]) -> None:
        """Bring the table in line with `summaries`: add, update or drop rows."""
        fresh = {s.name: s for s in summaries}
        for name in set(self.summaries) - set(fresh):
            self.remove_row(name)
        for name, summary in fresh.items():
            cells = self.cells(summary)
            if name not in self.summaries:
                self.add_row(*cells, key=name)
            elif summary != self.summaries[name]:
                for column, value in zip(COLUMNS, cells):
                    self.update_cell(name, column, value, update_width=True)
        self.summaries = fresh
        self.border_title = f"Runs ({len(fresh)})" if fresh else "Runs (none yet: press n to start one)"

    @staticmethod
    def cells(summary: RunSummary) -> tuple:
        state = Text(summary.state, style=STATE_STYLES.get(summary.state, ""))
        return (summary.name, summary.scale, summary.config, summary.backend, summary.device or "-",
                str(summary.step), format_best(summary.best), state, RunList.last_cell(summary))

    @staticmethod
    def last_cell(summary: RunSummary) -> Text:
        """The run's problem in red, else the latest evaluation's median fractional errors beside their
        floors (lower is better); a run without samples/latest_stats.json shows its logged released scores."""
        if summary.error:
            return Text(summary.error, style="red")
        if summary.errors:
            return Text(format_errors(summary.errors, sep=" "))
        return Text(format_scores(summary.scores))

    def selected(self) -> RunSummary | None:
        """The summary under the cursor, or None when the list is empty."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.summaries.get(key)
