"""The dashboard application: a thin App around the dashboard screen (`nbgan-tui`, `nbgan tui`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from nbgan_app.commands.tui import check_dir
from nbgan_app.devices import DeviceMonitor
from nbgan_app.errors import InputError
from tui import processes
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.quit import QuitScreen

PROJECT = Path(__file__).resolve().parents[1]


class NbganApp(App):
    """Watches the runs under `runs_dir`; acts on them only through `nbgan` processes."""

    TITLE = "nbgan"
    BINDINGS = [
        Binding("q", "quit_dashboard", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+c", "quit_dashboard", "Quit", show=False, priority=True),
    ]

    def __init__(self, runs_dir: Path, configs_dir: Path, refresh_s: float = 1.0,
                 devices: DeviceMonitor | None = None):
        super().__init__()
        self.runs_dir, self.configs_dir, self.refresh_s = Path(runs_dir), Path(configs_dir), refresh_s
        self.devices = devices if devices is not None else DeviceMonitor()

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen(self.runs_dir, self.configs_dir, self.refresh_s, self.devices))

    def on_unmount(self) -> None:
        self.devices.close()  # NVML's shutdown, once

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def running_runs(self) -> list[str]:
        dashboard = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        summaries = dashboard.watcher.scan() if dashboard else []
        return [s.name for s in summaries if s.state == "running"]

    def action_quit_dashboard(self) -> None:
        running = self.running_runs()
        if not running:
            self.exit()
            return
        self.push_screen(QuitScreen(running), self.quit_choice)

    def quit_choice(self, choice: str | None) -> None:
        if choice == "stop":
            for name in self.running_runs():
                try:
                    processes.stop_training(self.runs_dir / name)
                except (ValueError, OSError):
                    pass  # it ended meanwhile
        if choice in ("leave", "stop"):
            self.exit()


def create_app(runs_dir: str | Path = "checkpoints", configs_dir: str | Path | None = None,
               refresh_s: float = 1.0, devices: DeviceMonitor | None = None) -> NbganApp:
    """The dashboard over `runs_dir`, offering the configs in `configs_dir` (default: ./configs,
    else the project's configs/). Used by `nbgan tui`, `nbgan-tui` and the tests.

    `devices` reads the GPUs and the CPU (default: NVML through `pynvml`, the CPU where there is none);
    tests pass one over a stand-in NVML.
    """
    if configs_dir is None:
        configs_dir = Path("configs") if Path("configs").is_dir() else PROJECT / "configs"
    return NbganApp(Path(runs_dir), Path(configs_dir), refresh_s, devices)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbgan-tui", description="Terminal dashboard for nbgan runs.")
    parser.add_argument("--runs", default="checkpoints", help="directory holding run directories")
    parser.add_argument("--configs", default=None, help="directory of TOML configs offered by the new-run form")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_dir(args.runs, "--runs")
        if args.configs:
            check_dir(args.configs, "--configs")
    except InputError as exc:
        print(f"nbgan-tui: error: {exc}", file=sys.stderr)
        return 2
    create_app(args.runs, args.configs).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
