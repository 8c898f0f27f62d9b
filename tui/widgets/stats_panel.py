"""The summary statistics of the registry side by side, with the scores line."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from nbgan_app.stats import registry
from tui.samples import format_errors, frac_errors
from tui.widgets.stat_plot import StatPlot


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scores_line(scores: dict | None, n_real=None) -> str:
    """Two lines of scores of fake vs real (an `nbgan compare` result, or the trainer's latest_stats.json):
    the median fractional error of each statistic beside its real-vs-real floor (lower is better; at the
    floor, fake and real agree as well as two halves of the real set do), then the released score,
    1/Frechet distance (higher is better), with its floor. Otherwise flat `name=value` scores."""
    if not isinstance(scores, dict) or not scores:
        if _number(n_real) and n_real < 2:
            return f"scores: none ({n_real} real cube; a score needs 2)"
        return "scores: none yet"
    released = []
    floors = 0
    for name in registry.names():
        block = scores.get(name)
        if isinstance(block, dict) and _number(block.get("score")):
            floor = ((block.get("floor") or {}).get("score") or {}).get("mean")
            released.append(f"{name} {block['score']:.3g}" + (f" (floor {floor:.3g})" if _number(floor) else ""))
            floors += _number(floor)
    no_floor = "  (no floor: needs 4 real cubes)" if released and not floors else ""
    if not released:
        flat = [f"{k}={v:.3g}" for k, v in scores.items() if _number(v)]
        return "scores: " + ("  ".join(flat) if flat else "none yet")
    errors = frac_errors(scores)
    lines = [f"median error (lower is better): {format_errors(errors)}{no_floor}"] if errors else []
    lines.append(f"released 1/Frechet (higher is better): {'  '.join(released)}{'' if errors else no_floor}")
    return "\n".join(lines)


class StatsPanel(Vertical):
    """Each registry statistic (real vs fake) in a row, and the scores vs the real-vs-real floor."""

    DEFAULT_CSS = """
    StatsPanel { height: 1fr; }
    StatsPanel > Horizontal { height: 1fr; }
    StatsPanel > .scores { height: auto; max-height: 3; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            for name in registry.names():
                yield StatPlot(name, id=f"stat-{name}")
        yield Static("no statistics yet", classes="scores", id="stats-message")

    def show(self, payload: dict | str) -> None:
        """Show {"real", "fake", "scores"} or, given a string, that message and empty plots."""
        message = self.query_one("#stats-message", Static)
        if isinstance(payload, str):
            for plot in self.query(StatPlot):
                plot.show(None, None)
            message.update(payload)
            return
        for plot in self.query(StatPlot):
            plot.show(payload["real"][plot.stat_name], payload["fake"][plot.stat_name])
        n_real, n_fake = payload["real"].get("n_cubes", "?"), payload["fake"].get("n_cubes", "?")
        step = f"step {payload['step']}: " if _number(payload.get("step")) else ""
        message.update(f"{step}[cyan]real[/] n={n_real}, [orange1]fake[/] n={n_fake}   "
                       f"{escape(scores_line(payload.get('scores'), n_real))}")
