"""Asks before quitting while training runs: leave it running, stop it, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class QuitScreen(ModalScreen[str]):
    """Dismisses with "leave" (quit, training keeps going), "stop" (SIGTERM them, quit) or "cancel"."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 60; max-width: 100%; height: auto; border: thick $warning;
                            background: $surface; padding: 0 1; }
    QuitScreen Horizontal { height: 3; align: center middle; }
    QuitScreen Button { margin: 0 1; }
    """
    BINDINGS = [Binding("escape", "choose('cancel')", "Cancel"), Binding("l", "choose('leave')", "Leave running"),
                Binding("s", "choose('stop')", "Stop & quit")]

    def __init__(self, running: list[str]):
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]Training is running:[/b] {', '.join(self.running)}\n"
                        "Quitting the dashboard does not stop it. What now?")
            with Horizontal():
                yield Button("Leave running [l]", variant="primary", id="leave")
                yield Button("Stop & quit [s]", variant="warning", id="stop")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
