"""Chained sampling: pick M3, M2, M1 runs (or a shipped preset), n, size, order and the device; show the
job's progress, then its statistics."""

from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, Select

from nbgan_app import devices, scales
from nbgan_app.presets import PRESETS, Preset, list_presets
from tui.chain_sampling import ChainSampling
from tui.runs import RunSummary
from tui.screens.new_run import device_options
from tui.widgets.stats_panel import StatsPanel


class SamplingScreen(Screen):
    """The form and the view of a ChainSampling job, which does the process work and the scoring."""

    DEFAULT_CSS = """
    SamplingScreen > Vertical { height: auto; padding: 0 1; }
    SamplingScreen Grid { grid-size: 6; grid-columns: 8 1fr 8 1fr 8 1fr; grid-rows: 3; height: auto; }
    SamplingScreen Label { padding: 1 0 0 0; }
    SamplingScreen #preset-row { height: 3; }
    SamplingScreen #preset-row Label { width: 8; }
    SamplingScreen #preset-row Select { width: 1fr; }
    SamplingScreen #controls { height: 3; }
    SamplingScreen #controls Button { margin: 0 1 0 0; }
    SamplingScreen #progress-row { height: 1; }
    SamplingScreen #message { height: auto; max-height: 3; color: $text-muted; }
    SamplingScreen StatsPanel { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "back", "Back"), Binding("ctrl+s", "start", "Start sampling"),
                Binding("question_mark", "app.help", "Help")]

    def __init__(self, runs: list[RunSummary], out_dir: Path, presets_root: Path = PRESETS,
                 snapshot: devices.Snapshot | None = None, assigned: dict[str, int] | None = None):
        super().__init__()
        self.runs = runs
        self.snapshot = snapshot or devices.Snapshot(devices.read_cpu(), note="devices not read")
        self.assigned = assigned or {}
        # the form has one select per scale, so only chains of that length can fill it
        self.presets = [p for p in list_presets(presets_root)
                        if len(p.manifest.get("chain", [])) == len(scales.CHAIN)]
        self.out_dir = out_dir
        self.job: ChainSampling | None = None
        self.timer = None

    def compose(self) -> ComposeResult:
        options = [(f"{r.name} ({scales.title_of(r.scale)}, {r.state})", str(r.path)) for r in self.runs]
        options += [(f"{p.name}/{run.name} (preset)", str(run)) for p in self.presets for run in p.chain]
        with Vertical():
            if self.presets:
                with Horizontal(id="preset-row"):
                    yield Label("preset")
                    yield Select([(f"{p.name}: {p.manifest.get('description', '')}", p.name) for p in self.presets],
                                 prompt="none: the runs below", id="preset")
            with Grid():
                for scale in scales.CHAIN:
                    yield Label(scale.title)
                    match = next((str(r.path) for r in self.runs if r.scale == scale.name), Select.NULL)
                    yield Select(options, value=match, prompt=f"run for {scale.title}", id=scale.section)
                yield Label("n")
                yield Input("2", id="n", type="integer")
                yield Label("size")
                yield Input(placeholder="default", id="size", type="integer")
                yield Label("order")
                yield Select([("wavefront", "wavefront"), ("raster", "raster")], value="wavefront",
                             allow_blank=False, id="order")
                yield Label("device")
                yield Select(device_options(self.snapshot), value=devices.least_loaded(self.snapshot, self.assigned),
                             allow_blank=False, id="device")
            with Horizontal(id="controls"):
                yield Button("Start sampling", variant="primary", id="start")
                yield Button("Back", id="back")
            with Horizontal(id="progress-row"):
                yield ProgressBar(id="progress", show_eta=False)
                yield Label("", id="wave")
            yield Label(f"pick {'a preset or ' if self.presets else ''}three runs, then Start (ctrl+s)",
                        id="message")
        yield StatsPanel(id="sample-stats")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_start() if event.button.id == "start" else self.action_back()

    def on_select_changed(self, event: Select.Changed) -> None:
        if not self.presets:
            return
        preset = next((p for p in self.presets if p.name == self.query_one("#preset", Select).value), None)
        if preset is None:
            return
        if event.select.id == "preset":
            for scale, run in zip(scales.CHAIN, preset.chain):
                self.query_one(f"#{scale.section}", Select).value = str(run)
            self.say(f"preset {preset.name}: {self.describe(preset)}; Start (ctrl+s)")
        elif self.chosen_chain() != [str(r) for r in preset.chain]:
            # a hand-picked run makes the chain no longer the preset's
            self.query_one("#preset", Select).clear()

    @staticmethod
    def describe(preset: Preset) -> str:
        runs = preset.manifest.get("runs", {})
        return " -> ".join(f"{name} ({runs.get(name, {}).get('steps', '?')} steps)"
                           for name in preset.manifest["chain"])

    def chosen_chain(self) -> list:
        return [self.query_one(f"#{s.section}", Select).value for s in scales.CHAIN]

    def action_back(self) -> None:
        self.app.pop_screen()

    def say(self, text: str, failed: bool = False) -> None:
        """Show `text` as plain text (log tails hold brackets); a failure's first line in red."""
        first, newline, rest = text.partition("\n")
        shown = f"[red]{escape(first)}[/red]" if failed else escape(first)
        self.query_one("#message", Label).update(shown + newline + escape(rest))

    def action_start(self) -> None:
        if self.job and not self.job.done:
            self.say("sampling is already running")
            return
        chain = self.chosen_chain()
        if any(c is Select.NULL or c is None for c in chain):
            self.say("pick a run for each of M3, M2 and M1", failed=True)
            return
        n, size = self.query_one("#n", Input).value.strip(), self.query_one("#size", Input).value.strip()
        if not n.isdigit() or int(n) < 1 or (size and not size.isdigit()):
            self.say(f"n must be a positive integer and size empty or an integer. Received: {n!r}, {size!r}",
                     failed=True)
            return
        out = self.out_dir / f"chain-{time.strftime('%Y%m%d-%H%M%S')}.h5"
        try:
            self.job = ChainSampling([Path(c) for c in chain], int(n), int(size) if size else None,
                                     self.query_one("#order", Select).value, out,
                                     device=self.query_one("#device", Select).value)
        except OSError as exc:
            self.say(f"could not start nbgan sample: {exc}", failed=True)
            return
        self.say(self.job.message)
        if self.timer:
            self.timer.stop()
        self.timer = self.set_interval(0.5, self.poll, name="sampling-poll")

    def poll(self) -> None:
        try:
            self._poll()
        except Exception as exc:  # never take the dashboard down; show what went wrong
            self.say(f"sampling view error: {type(exc).__name__}: {exc}", failed=True)

    def _poll(self) -> None:
        if self.job is None:
            return
        progress = self.job.progress()
        if progress:
            wave, waves, level = progress
            self.query_one(ProgressBar).update(total=waves, progress=wave)
            self.query_one("#wave", Label).update(f" wave {wave}/{waves}" + (f" level {level}" if level else ""))
        self.job.poll()
        self.say(self.job.message, failed=self.job.failed)
        if self.job.done:
            self.timer.stop()
            self.query_one(StatsPanel).show(self.job.stats if self.job.stats is not None else "no statistics")
