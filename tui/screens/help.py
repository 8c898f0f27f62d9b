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
| `n` | new training run (form: config, scale, backend, device, steps; ctrl+t trains the chain M3, M2, M1 at once, one GPU each when there are three) |
| `s` | stop the selected run (SIGTERM: it checkpoints first) |
| `r` | resume the selected run (same `nbgan train` command) |
| `c` | chained sampling M3 -> M2 -> M1 |
| `1` `2` `3` | losses / statistics / slices of the selected run |
| `-` `+` (or click the slider) | slice index in the slice view |
| up / down, mouse | select a run |
| `?` | this help;  `q` quit (asks if training runs) |

Everything is read from the run directories (`config.json`, `state.json`,
`metrics.jsonl`, `samples/`, `device.json`), so runs started from the shell appear too.

The devices panel shows each GPU (memory, utilisation, the runs on it) and the CPU.
A run started here gets its device through `CUDA_VISIBLE_DEVICES`; the form warns
when the run's estimated memory does not fit the device's free memory.
The runs list's last column is the latest evaluation's median fractional error of
each statistic beside its real-vs-real floor (lower is better); the statistics tab
also shows the released 1/Frechet scores (higher is better).
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
