"""The new-run form: a modal that returns the chosen settings, or None when cancelled."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from nbgan_app import scales

SCALES = tuple((f"{s.name} ({s.title}, {s.role})", s.name) for s in scales.ALL)
BACKENDS = ("tensorflow", "jax", "torch")


class NewRunScreen(ModalScreen[dict | None]):
    """Pick a config from configs/, a scale, a backend, steps and a run name.

    Dismisses with {"config", "scale", "backend", "steps", "name"} or None.
    """

    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > Vertical {
        width: 70; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    NewRunScreen Grid { grid-size: 2; grid-columns: 10 1fr; grid-rows: 3; height: auto; }
    NewRunScreen Label { padding: 1 0 0 0; }
    NewRunScreen Horizontal { height: 3; align: right middle; }
    NewRunScreen #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "start", "Start")]

    def __init__(self, configs: list[Path], default_backend: str = "tensorflow"):
        super().__init__()
        self.configs = configs
        self.default_backend = default_backend if default_backend in BACKENDS else "tensorflow"

    def compose(self) -> ComposeResult:
        options = [(p.name, str(p)) for p in self.configs]
        default = next((str(p) for p in self.configs if p.stem == "demo"), options[0][1] if options else Select.NULL)
        with Vertical():
            yield Label("[b]New training run[/b]  (Enter or ctrl+s starts, Esc cancels)")
            with Grid():
                yield Label("config")
                yield Select(options, value=default, allow_blank=not options, id="config")
                yield Label("scale")
                yield Select(SCALES, value=scales.M3.name, allow_blank=False, id="scale")
                yield Label("backend")
                yield Select([(b, b) for b in BACKENDS], value=self.default_backend, allow_blank=False,
                             id="backend")
                yield Label("steps")
                yield Input(placeholder="config's default", id="steps", type="integer")
                yield Label("run name")
                yield Input(placeholder="auto: <config>-m<scale>-<time>", id="name")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Start", variant="primary", id="start")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_start() if event.button.id == "start" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_start()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_start(self) -> None:
        config = self.query_one("#config", Select).value
        steps = self.query_one("#steps", Input).value.strip()
        name = self.query_one("#name", Input).value.strip()
        error = self.query_one("#error", Label)
        if config is Select.NULL or config is None:
            error.update("no config found in configs/")
            return
        if steps and (not steps.isdigit() or int(steps) < 1):
            error.update(f"steps must be a positive integer. Received: {steps!r}")
            return
        if name and ("/" in name or name.startswith((".", "_"))):
            error.update(f"run name must be a plain directory name. Received: {name!r}")
            return
        scale = self.query_one("#scale", Select).value
        self.dismiss({
            "config": config, "scale": scale, "backend": self.query_one("#backend", Select).value,
            "steps": int(steps) if steps else None,
            "name": name or f"{Path(config).stem}-m{scale}-{time.strftime('%Y%m%d-%H%M%S')}",
        })
