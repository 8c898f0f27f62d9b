"""The help screen: what each key does and where the data comes from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# nbgan dashboard

| key | action |
|---|---|
| `n` | new training run (form: config, scale, backend, steps) |
| `s` | stop the selected run (SIGTERM: it checkpoints first) |
| `r` | resume the selected run (same `nbgan train` command) |
| `c` | chained sampling M3 -> M2 -> M1 |
| `1` `2` `3` | losses / statistics / slices of the selected run |
| `-` `+` (or click the slider) | slice index in the slice view |
| up / down, mouse | select a run |
| `?` | this help;  `q` quit (asks if training runs) |

Everything is read from the run directories (`config.json`, `state.json`,
`metrics.jsonl`, `samples/`), so runs started from the shell appear too.
Actions run `nbgan` commands as separate processes: quitting the dashboard
never stops training. Training output goes to `train.log` in the run directory.
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80; max-width: 100%; height: 90%; border: thick $accent;
                                  background: $surface; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
