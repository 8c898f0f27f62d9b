"""The devices panel: one line per GPU (name, memory, utilisation, the runs on it), and the CPU (cores,
load average, memory, the runs on it)."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from nbgan_app.devices import CPU, Snapshot
from nbgan_app.memory_estimate import GIB


def _runs(names: list[str], limit: int = 3) -> str:
    if not names:
        return "[dim]no run[/dim]"
    shown = ", ".join(names[:limit])
    return escape(shown + (f" +{len(names) - limit}" if len(names) > limit else ""))


def device_lines(snapshot: Snapshot, runs: dict[str, list[str]]) -> list[str]:
    """The panel's lines (Rich markup): each GPU, then the CPU; `runs` maps a device to its runs' names."""
    lines = []
    for gpu in snapshot.gpus:
        util = f"{gpu.utilisation:3d}%" if gpu.utilisation is not None else "   -"
        lines.append(f"[b]{gpu.device}[/b] {escape(gpu.name)}  mem {gpu.memory_used / GIB:.1f}/"
                     f"{gpu.memory_total / GIB:.0f} GiB  util {util}  runs: {_runs(runs.get(gpu.device, []))}")
    cpu = snapshot.cpu
    used = (cpu.memory_total - cpu.memory_available) / GIB
    load = " ".join(f"{x:.2f}" for x in cpu.load)
    lines.append(f"[b]{CPU}[/b] {cpu.cores} cores  load {load}  mem {used:.1f}/{cpu.memory_total / GIB:.0f} GiB  "
                 f"runs: {_runs(runs.get(CPU, []))}")
    return lines


class DevicesPanel(Static):
    """Redrawn by the dashboard at the plots' rate; shows the last snapshot it was given."""

    DEFAULT_CSS = """
    DevicesPanel {
        height: auto;
        max-height: 7;
        border: round $primary-darken-2;
        border-title-color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs):
        super().__init__("reading devices...", **kwargs)
        self.border_title = "Devices"
        self.lines: list[str] = []

    def show(self, snapshot: Snapshot, runs: dict[str, list[str]]) -> None:
        lines = device_lines(snapshot, runs)
        if lines != self.lines:
            self.lines = lines
            self.update("\n".join(lines))
        self.border_title = f"Devices ({len(snapshot.gpus)} GPU{'s' if len(snapshot.gpus) != 1 else ''})"
        # why there is no GPU row (no NVML library, no driver), under the panel rather than in a line
        self.border_subtitle = escape(snapshot.note) if snapshot.note and not snapshot.gpus else ""
