"""The new-run form: a modal that returns the chosen settings, or None when cancelled.

It starts one scale, or the whole chain (M3, M2 and M1 at once: they are
independent until sampling). The device defaults to the least-loaded GPU, or
the CPU where there is none; the memory line estimates what the run (and the
chain) needs from the config (`nbgan_app.memory_estimate`) against the free
memory of the chosen device, and a start that does not fit asks to be pressed
again.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from nbgan_app import devices, scales
from nbgan_app.config import load_config
from nbgan_app.errors import InputError
from nbgan_app.memory_estimate import estimate_training, format_bytes

SCALES = tuple((f"{s.name} ({s.title}, {s.role})", s.name) for s in scales.ALL)
BACKENDS = ("tensorflow", "jax", "torch")


def device_options(snapshot: devices.Snapshot) -> list[tuple[str, str]]:
    """(label, value) of every device of `snapshot`: the GPUs with their load, then the CPU."""
    options = []
    for gpu in snapshot.gpus:
        util = f"{gpu.utilisation}%" if gpu.utilisation is not None else "-"
        options.append((f"{gpu.device} {gpu.name} ({format_bytes(gpu.memory_free)} free, {util})", gpu.device))
    cpu = snapshot.cpu
    options.append((f"cpu ({cpu.cores} cores, load {cpu.load[0]:.1f})", devices.CPU))
    return options


def chain_devices(device: str, snapshot: devices.Snapshot, assigned: dict[str, int] | None = None) -> dict[str, str]:
    """scale name -> device for the chain started on `device` (`devices.spread`: one GPU each when
    there are enough)."""
    return dict(zip((s.name for s in scales.CHAIN), devices.spread(len(scales.CHAIN), device, snapshot, assigned)))


class NewRunScreen(ModalScreen[dict | None]):
    """Pick a config from configs/, a scale, a backend, a device, steps and a run name.

    Dismisses with {"config", "scale", "backend", "device", "steps", "name", "chain"} or None;
    with "chain" True, "devices" maps each scale of the chain to its device and "name" is
    the prefix of the three runs' names.
    """

    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > Vertical {
        width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    NewRunScreen Grid { grid-size: 4; grid-columns: 9 1fr 9 1fr; grid-rows: 3; height: auto; }
    NewRunScreen Label { padding: 1 0 0 0; }
    NewRunScreen #memory { padding: 0; width: 100%; height: auto; color: $text-muted; }
    NewRunScreen Horizontal { height: 3; align: right middle; }
    NewRunScreen Button { margin: 0 0 0 1; }
    NewRunScreen #error { color: $warning; width: 100%; height: auto; padding: 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "start", "Start"),
                Binding("ctrl+t", "start_chain", "Train chain")]

    def __init__(self, configs: list[Path], default_backend: str = "tensorflow",
                 snapshot: devices.Snapshot | None = None, assigned: dict[str, int] | None = None):
        super().__init__()
        self.configs = configs
        self.default_backend = default_backend if default_backend in BACKENDS else "tensorflow"
        self.snapshot = snapshot or devices.Snapshot(devices.read_cpu(), note="devices not read")
        self.assigned = assigned or {}  # device -> runs already on it, for the default and the chain
        self._confirmed: tuple | None = None  # the settings whose memory warning was shown once

    def compose(self) -> ComposeResult:
        options = [(p.name, str(p)) for p in self.configs]
        default = next((str(p) for p in self.configs if p.stem == "demo"), options[0][1] if options else Select.NULL)
        with Vertical():
            yield Label("[b]New training run[/b]  (ctrl+s: start, ctrl+t: train the chain, Esc: cancel)")
            with Grid():
                yield Label("config")
                yield Select(options, value=default, allow_blank=not options, id="config")
                yield Label("scale")
                yield Select(SCALES, value=scales.M3.name, allow_blank=False, id="scale")
                yield Label("backend")
                yield Select([(b, b) for b in BACKENDS], value=self.default_backend, allow_blank=False,
                             id="backend")
                yield Label("device")
                yield Select(device_options(self.snapshot), value=devices.least_loaded(self.snapshot, self.assigned),
                             allow_blank=False, id="device")
                yield Label("steps")
                yield Input(placeholder="config's default", id="steps", type="integer")
                yield Label("run name")
                yield Input(placeholder="auto: <config>-m<scale>-<time>", id="name")
            yield Label("", id="memory")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Start", variant="primary", id="start")
                yield Button("Train chain M3+M2+M1", variant="success", id="chain")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.update_memory()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.update_memory()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"start": self.action_start, "chain": self.action_start_chain}.get(event.button.id, self.action_cancel)()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_start()

    def action_cancel(self) -> None:
        self.dismiss(None)

    # --- the memory guard ---------------------------------------------------------------------------

    def settings(self) -> tuple:
        return tuple(self.query_one(f"#{key}", Select).value for key in ("config", "scale", "device"))

    def plan(self, chain: bool) -> dict[str, str]:
        """scale name -> device of what a start would launch."""
        config, scale, device = self.settings()
        return chain_devices(device, self.snapshot, self.assigned) if chain else {scale: device}

    def needs(self, chain: bool) -> dict[str, int] | str:
        """device -> estimated bytes of what a start would launch there, or why there is no estimate."""
        config = self.query_one("#config", Select).value
        if config is Select.NULL or config is None:
            return "no config"
        try:
            table = load_config(config)
        except InputError as exc:
            return str(exc)
        needed: dict[str, int] = {}
        for scale, device in self.plan(chain).items():
            kind = "cpu" if device == devices.CPU else "gpu"
            needed[device] = needed.get(device, 0) + estimate_training(table, scale, kind).total
        return needed

    def warnings(self, chain: bool) -> list[str]:
        needed = self.needs(chain)
        if isinstance(needed, str):
            return []
        found = [devices.memory_warning(total, device, self.snapshot) for device, total in needed.items()]
        return [w for w in found if w]

    def update_memory(self) -> None:
        """The memory line (the run's and the chain's estimates against the device's free memory) and
        the single run's warning."""
        single, chain = self.needs(False), self.needs(True)
        memory, error = self.query_one("#memory", Label), self.query_one("#error", Label)
        if isinstance(single, str):
            memory.update(escape(f"memory: no estimate ({single})"))
            error.update("")
            return
        (device, total), = single.items()
        free = self.snapshot.free_memory(device)
        spread = ", ".join(f"{format_bytes(b)} on {d}" for d, b in chain.items())
        memory.update(escape(f"memory: about {format_bytes(total)} for this run; the chain {spread}; "
                             f"{device} has {format_bytes(free) if free is not None else '?'} free"))
        warning = self.warnings(False)
        error.update(escape(f"warning: {warning[0]}") if warning else "")

    # --- starting -----------------------------------------------------------------------------------

    def action_start(self) -> None:
        self._submit(chain=False)

    def action_start_chain(self) -> None:
        self._submit(chain=True)

    def _submit(self, chain: bool) -> None:
        config = self.query_one("#config", Select).value
        steps = self.query_one("#steps", Input).value.strip()
        name = self.query_one("#name", Input).value.strip()
        error = self.query_one("#error", Label)
        if config is Select.NULL or config is None:
            error.update("no config found in configs/")
            return
        if steps and (not steps.isdigit() or int(steps) < 1):
            error.update(escape(f"steps must be a positive integer. Received: {steps!r}"))
            return
        if name and ("/" in name or name.startswith((".", "_"))):
            error.update(escape(f"run name must be a plain directory name. Received: {name!r}"))
            return
        warnings = self.warnings(chain)
        key = (*self.settings(), chain)
        if warnings and self._confirmed != key:
            self._confirmed = key
            what = "the chain" if chain else "this run"
            error.update(escape(f"warning: {'; '.join(warnings)}. Press {'ctrl+t' if chain else 'Start'} "
                                f"again to start {what} anyway"))
            return
        scale = self.query_one("#scale", Select).value
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = f"{Path(config).stem}-chain-{stamp}" if chain else f"{Path(config).stem}-m{scale}-{stamp}"
        self.dismiss({
            "config": config, "scale": scale, "backend": self.query_one("#backend", Select).value,
            "device": self.query_one("#device", Select).value, "steps": int(steps) if steps else None,
            "name": name or default, "chain": chain, "devices": self.plan(chain),
        })
