"""The slices tab: the latest generated cube beside a held-out real cube at the run's level."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import TabPane

from nbgan_app import rundir
from tui.real_data import real_level_cube
from tui.runs import file_key
from tui.widgets.panes.pane import RunUpdate
from tui.widgets.slice_viewer import SliceViewer


class SlicesPane(TabPane):
    def __init__(self):
        super().__init__("3 Slices", id="slices")

    def compose(self) -> ComposeResult:
        yield SliceViewer(id="slices-view")

    def source_key(self, run: RunUpdate) -> tuple:
        # the real cube comes from the run's config, so a rewritten config.json shows a new one
        return file_key(run.path / rundir.SAMPLES / rundir.LATEST_SAMPLES), file_key(run.path / rundir.CONFIG)

    def refresh_from(self, run: RunUpdate) -> None:
        latest = run.path / rundir.SAMPLES / rundir.LATEST_SAMPLES
        self.query_one(SliceViewer).show(latest if latest.exists() else None, real_level_cube(run.path))
