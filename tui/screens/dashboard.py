"""The main screen: run list on top, the devices under it, live view of the selected run below, footer
with every key."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, TabbedContent

from nbgan_app import scales
from nbgan_app.devices import DeviceMonitor
from tui import processes
from tui.runs import RunWatcher, runs_by_device
from tui.screens.new_run import NewRunScreen
from tui.screens.sampling import SamplingScreen
from tui.widgets.devices_panel import DevicesPanel
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

    def __init__(self, runs_dir: Path, configs_dir: Path, refresh_s: float = 1.0,
                 devices: DeviceMonitor | None = None):
        super().__init__()
        self.runs_dir, self.configs_dir, self.refresh_s = runs_dir, configs_dir, refresh_s
        self.watcher = RunWatcher(runs_dir)
        self.devices = devices if devices is not None else DeviceMonitor()
        self.devices_every_s = 3 * refresh_s  # the plots' rate: NVML reads are cheap, but not needed faster

    def compose(self) -> ComposeResult:
        yield RunList(id="runs")
        yield DevicesPanel(id="devices")
        yield TrainingView(plot_every_s=self.devices_every_s, id="view")
        yield Footer()

    def on_mount(self) -> None:
        self.poll()
        self.poll_devices()
        self.set_interval(self.refresh_s, self.poll, name="poll")
        self.set_interval(self.devices_every_s, self.poll_devices, name="devices")

    def poll_devices(self) -> None:
        """Read the devices and show them with the running runs on each."""
        try:
            snapshot = self.devices.snapshot()
            self.query_one(DevicesPanel).show(snapshot, runs_by_device(self.watcher.scan(), snapshot))
        except Exception as exc:  # a driver hiccup must not take the dashboard down
            self.notify(f"devices: {type(exc).__name__}: {exc}", severity="error", timeout=3)

    def assigned(self) -> dict[str, int]:
        """device -> running runs on it (what the default device and the chain spread around)."""
        return {device: len(names) for device, names in
                runs_by_device(self.watcher.scan(), self.devices.latest()).items()}

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
        self.app.push_screen(NewRunScreen(configs, snapshot=self.devices.snapshot(), assigned=self.assigned()),
                             self.start_run)

    def start_run(self, choice: dict | None) -> None:
        """Start what the form chose: one run, or the chain's three runs at once, each on its device."""
        if not choice:
            return
        if choice.get("chain"):
            runs = {f"{choice['name']}-{s.section}": s.name for s in scales.CHAIN}
        else:
            runs = {choice["name"]: choice["scale"]}
        taken = [name for name in runs if (self.runs_dir / name).exists()]
        if taken:
            self.notify(f"{self.runs_dir / taken[0]} exists: select it and press r to resume", severity="error")
            return
        snapshot = self.devices.latest()
        started = []
        for name, scale in runs.items():
            run_dir = self.runs_dir / name
            device = choice.get("devices", {}).get(scale, choice.get("device"))
            try:
                processes.start_training(choice["config"], scale, run_dir, choice["backend"], choice["steps"],
                                         device=device, snapshot=snapshot)
            except OSError as exc:
                self.notify(f"could not start nbgan train for {name}: {exc}", severity="error")
                continue
            started.append(f"{name} on {device}" if device else name)
        if started:
            where = f" (log: {self.runs_dir / choice['name'] / processes.TRAIN_LOG})" if len(started) == 1 else ""
            self.notify(f"started training {', '.join(started)}{where}")
        self.poll()
        self.select(next(iter(runs)))

    def select(self, name: str) -> None:
        """Move the run list's cursor to run `name` (once the list shows it)."""
        run_list = self.query_one(RunList)
        if name in run_list.summaries:
            run_list.move_cursor(row=run_list.get_row_index(name))

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
        self.app.push_screen(SamplingScreen(runs, self.runs_dir / "_sampling", snapshot=self.devices.snapshot(),
                                            assigned=self.assigned()))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.poll()

    def action_slice(self, delta: int) -> None:
        self.query_one("#slice-slider").action_step(delta)
