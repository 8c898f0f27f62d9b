"""The main screen: run list on top, live view of the selected run below, footer with every key."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, TabbedContent

from tui import processes
from tui.runs import RunWatcher
from tui.screens.new_run import NewRunScreen
from tui.screens.sampling import SamplingScreen
from tui.widgets.run_list import RunList
from tui.widgets.training_view import TrainingView


class DashboardScreen(Screen):
    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    """
    BINDINGS = [
        Binding("n", "new_run", "New run"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("c", "sample", "Sample"),
        Binding("1", "tab('losses')", "Losses", show=False),
        Binding("2", "tab('statistics')", "Stats", show=False),
        Binding("3", "tab('slices')", "Slices", show=False),
        Binding("minus", "slice(-1)", "Slice-", show=False),
        Binding("plus,equals_sign", "slice(1)", "Slice+", show=False),
    ]

    def __init__(self, runs_dir: Path, configs_dir: Path, refresh_s: float = 1.0):
        super().__init__()
        self.runs_dir, self.configs_dir, self.refresh_s = runs_dir, configs_dir, refresh_s
        self.watcher = RunWatcher(runs_dir)

    def compose(self) -> ComposeResult:
        yield RunList(id="runs")
        yield TrainingView(plot_every_s=3 * self.refresh_s, id="view")
        yield Footer()

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self.refresh_s, self.poll, name="poll")

    def poll(self) -> None:
        """Re-read the run directories; no error in a run's files may take the dashboard down."""
        try:
            processes.reap()
            run_list = self.query_one(RunList)
            run_list.show(self.watcher.scan())
            selected = run_list.selected()
            view = self.query_one(TrainingView)
            view.follow(selected.path if selected else None)
            view.poll(self.watcher, selected)
        except Exception as exc:  # a run vanishing or a file torn mid-read: say so, keep going
            self.notify(f"refresh failed: {type(exc).__name__}: {exc}", severity="error", timeout=3)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.poll()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.poll()  # hidden tabs are not redrawn while training runs: draw the one now shown

    def selected_or_say(self):
        selected = self.query_one(RunList).selected()
        if selected is None:
            self.notify("no run selected", severity="warning")
        return selected

    def action_new_run(self) -> None:
        configs = sorted(self.configs_dir.glob("*.toml")) if self.configs_dir.is_dir() else []
        self.app.push_screen(NewRunScreen(configs), self.start_run)

    def start_run(self, choice: dict | None) -> None:
        if not choice:
            return
        run_dir = self.runs_dir / choice["name"]
        if run_dir.exists():
            self.notify(f"{run_dir} exists: select it and press r to resume", severity="error")
            return
        try:
            processes.start_training(choice["config"], choice["scale"], run_dir, choice["backend"], choice["steps"])
        except OSError as exc:
            self.notify(f"could not start nbgan train: {exc}", severity="error")
            return
        self.notify(f"started training {choice['name']} (log: {run_dir / processes.TRAIN_LOG})")
        self.poll()

    def action_stop(self) -> None:
        self._act(processes.stop_training, "sent SIGTERM to {name} (pid {result}): it checkpoints, then stops")

    def action_resume(self) -> None:
        self._act(processes.resume_training, "resuming {name}")

    def _act(self, action, message: str) -> None:
        selected = self.selected_or_say()
        if selected is None:
            return
        try:
            result = action(selected.path)
        except (ValueError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(message.format(name=selected.name, result=result))

    def action_sample(self) -> None:
        runs = [s for s in self.watcher.scan() if s.state != "error"]
        self.app.push_screen(SamplingScreen(runs, self.runs_dir / "_sampling"))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.poll()

    def action_slice(self, delta: int) -> None:
        self.query_one("#slice-slider").action_step(delta)
