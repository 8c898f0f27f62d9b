"""Chained sampling: pick M3, M2, M1 runs, n, size and order; run `nbgan sample`, then `nbgan compare`."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, Select

from tui import processes
from tui.runs import RunSummary
from tui.real_data import real_cubes, score_in_process
from tui.samples import is_complete, read_stats_pair
from tui.widgets.stats_panel import StatsPanel


class SamplingScreen(Screen):
    """Runs the chain as a process, shows its progress per wave, then the statistics against real cubes."""

    DEFAULT_CSS = """
    SamplingScreen > Vertical { height: auto; padding: 0 1; }
    SamplingScreen Grid { grid-size: 6; grid-columns: 4 1fr 4 1fr 4 1fr; grid-rows: 3; height: auto; }
    SamplingScreen Label { padding: 1 0 0 0; }
    SamplingScreen #controls { height: 3; }
    SamplingScreen #controls Button { margin: 0 1 0 0; }
    SamplingScreen #progress-row { height: 1; }
    SamplingScreen #message { height: auto; max-height: 3; color: $text-muted; }
    SamplingScreen StatsPanel { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "back", "Back"), Binding("ctrl+s", "start", "Start sampling"),
                Binding("question_mark", "app.help", "Help")]

    def __init__(self, runs: list[RunSummary], out_dir: Path):
        super().__init__()
        self.runs = runs
        self.out_dir = out_dir
        self.job: processes.SampleJob | None = None
        self.compare: processes.SampleJob | None = None
        self.result: dict | str | None = None
        self.note = ""  # which real cubes the samples are scored against
        self.scoring = False  # an in-process scoring thread is running
        self.timer = None

    def compose(self) -> ComposeResult:
        options = [(f"{r.name} (M{r.scale}, {r.state})", str(r.path)) for r in self.runs]
        with Vertical():
            with Grid():
                for scale in ("3", "2", "1"):
                    yield Label(f"M{scale}")
                    match = next((str(r.path) for r in self.runs if r.scale == scale), Select.NULL)
                    yield Select(options, value=match, prompt=f"run for M{scale}", id=f"m{scale}")
                yield Label("n")
                yield Input("2", id="n", type="integer")
                yield Label("size")
                yield Input(placeholder="default", id="size", type="integer")
                yield Label("order")
                yield Select([("wavefront", "wavefront"), ("raster", "raster")], value="wavefront",
                             allow_blank=False, id="order")
            with Horizontal(id="controls"):
                yield Button("Start sampling", variant="primary", id="start")
                yield Button("Back", id="back")
            with Horizontal(id="progress-row"):
                yield ProgressBar(id="progress", show_eta=False)
                yield Label("", id="wave")
            yield Label("pick three runs, then Start (ctrl+s)", id="message")
        yield StatsPanel(id="sample-stats")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_start() if event.button.id == "start" else self.action_back()

    def action_back(self) -> None:
        self.app.pop_screen()

    def say(self, text: str) -> None:
        self.query_one("#message", Label).update(text)

    def action_start(self) -> None:
        if self.job and self.job.process.poll() is None:
            self.say("sampling is already running")
            return
        chain = [self.query_one(f"#m{s}", Select).value for s in ("3", "2", "1")]
        if any(c is Select.NULL or c is None for c in chain):
            self.say("[red]pick a run for each of M3, M2 and M1[/red]")
            return
        n, size = self.query_one("#n", Input).value.strip(), self.query_one("#size", Input).value.strip()
        if not n.isdigit() or int(n) < 1 or (size and not size.isdigit()):
            self.say(f"[red]n must be a positive integer and size empty or an integer. Received: {n!r}, {size!r}[/red]")
            return
        out = self.out_dir / f"chain-{time.strftime('%Y%m%d-%H%M%S')}.h5"
        order = self.query_one("#order", Select).value
        self.job = processes.start_sampling([Path(c) for c in chain], int(n), int(size) if size else None,
                                            order, out)
        self.compare, self.result = None, None
        self.say(f"sampling into {out} (log {self.job.log.name})")
        if self.timer:
            self.timer.stop()
        self.timer = self.set_interval(0.5, self.poll, name="sampling-poll")

    def poll(self) -> None:
        try:
            self._poll()
        except Exception as exc:  # never take the dashboard down; show what went wrong
            self.say(f"[red]sampling view error: {type(exc).__name__}: {exc}[/red]")

    def _poll(self) -> None:
        if self.job is None or self.result is not None or self.scoring:
            return
        progress = self.job.progress()
        if progress:
            wave, waves, level = progress
            self.query_one(ProgressBar).update(total=waves, progress=wave)
            self.query_one("#wave", Label).update(f" wave {wave}/{waves}" + (f" level {level}" if level else ""))
        if self.compare is None:
            code = self.job.process.poll()
            if code is None:
                return
            if code != 0 or not is_complete(self.job.out):
                why = f"exit code {code}" if code else "output incomplete (complete attribute not set)"
                self.finish(f"[red]sampling failed: {why}[/red]\n{self.job.log_tail()}")
                return
            self.start_compare()
            return
        code = self.compare.process.poll()
        if code is None:
            return
        if code != 0:
            self.finish(f"[red]nbgan compare failed (exit {code})[/red]\n{self.compare.log_tail()}")
            return
        self.finish(read_stats_pair(self.compare.out))

    def start_compare(self) -> None:
        """Score the samples against the M1 run's real cubes: `nbgan compare` (with the floor) when
        there are enough real cubes for a floor, else the same scores without it, in a thread."""
        m1 = Path(self.query_one("#m1", Select).value)
        found = real_cubes(m1)
        if isinstance(found, str):
            self.finish(f"samples written to {self.job.out}; no statistics: {found}")
            return
        files, self.note = found.for_scores()
        self.say(f"samples complete: {self.job.out.name}; computing statistics ({self.note})")
        if len(files) >= 4:
            self.compare = processes.start_compare(files, self.job.out, self.job.out.with_suffix(".stats.json"),
                                                   found.box_size)
            return
        self.scoring = True
        self.run_worker(lambda: self.score_thread(files, found.box_size), thread=True, name="scores")

    def score_thread(self, files: list[Path], box_size: float | None) -> None:
        """Runs in a worker thread: numpy statistics, nothing written; the result goes back to the UI."""
        try:
            result: dict | str = score_in_process(files, self.job.out, box_size)
        except Exception as exc:  # unreadable or mismatched cubes: a message, never a crash
            result = f"[red]statistics failed: {type(exc).__name__}: {exc}[/red]"
        self.app.call_from_thread(self.finish, result)

    def finish(self, result: dict | str) -> None:
        self.result, self.scoring = result, False
        if self.timer:
            self.timer.stop()
        if isinstance(result, dict):
            self.query_one(StatsPanel).show(result)
            where = f" and {self.compare.out.name}" if self.compare else ""
            self.say(f"done: {self.job.out}{where}\n{self.note}")
        else:
            self.query_one(StatsPanel).show("no statistics")
            self.say(result)
