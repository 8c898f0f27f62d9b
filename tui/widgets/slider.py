"""A small horizontal slider (Textual 8 has none): keys and mouse move an integer value."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class Slider(Widget, can_focus=True):
    """An integer in [0, maximum]; left/right or -/+ step it, a click jumps to the clicked position."""

    DEFAULT_CSS = """
    Slider { height: 1; width: 1fr; color: $primary; }
    Slider:focus { color: $accent; }
    """
    BINDINGS = [
        Binding("left,minus", "step(-1)", "slice -", show=False),
        Binding("right,plus,equals_sign", "step(1)", "slice +", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
    ]
    value = reactive(0)

    class Changed(Message):
        def __init__(self, slider: "Slider", value: int):
            super().__init__()
            self.slider = slider
            self.value = value

    def __init__(self, maximum: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.maximum = maximum

    def set_maximum(self, maximum: int) -> None:
        self.maximum = max(0, int(maximum))
        self.value = min(self.value, self.maximum)
        self.refresh()

    def validate_value(self, value: int) -> int:
        return max(0, min(int(value), self.maximum))

    def watch_value(self, value: int) -> None:
        self.post_message(self.Changed(self, value))

    def action_step(self, delta: int) -> None:
        self.value += delta

    def action_jump(self, where: int) -> None:
        self.value = self.maximum if where < 0 else where

    def on_click(self, event: Click) -> None:
        width = max(1, self.size.width - 1)
        self.value = round(event.x / width * self.maximum)

    def render(self) -> Text:
        width = max(2, self.size.width)
        knob = round(self.value / self.maximum * (width - 1)) if self.maximum else 0
        return Text("━" * knob, style="bold") + Text("●", style="bold reverse") + Text("─" * (width - knob - 1))
