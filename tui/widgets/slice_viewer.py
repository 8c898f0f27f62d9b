"""The latest generated sample and a real cube side by side, one slice each, with a slider."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from tui.runs import file_key
from tui.samples import read_slice
from tui.widgets.heat_map import HeatMap
from tui.widgets.slider import Slider


class SliceViewer(Vertical):
    """Slice `index` (along the first axis) of the first `fake` cube and the `real` cube, colour scale shared.

    `fake` is a cube file (samples/latest.h5); `real` a cube file, a (S, S, S) count array
    (the held-out cube at the run's level) or a message saying why there is none.
    """

    DEFAULT_CSS = """
    SliceViewer { height: 1fr; }
    SliceViewer > Horizontal { height: 1fr; }
    SliceViewer .caption { height: 1; width: 1fr; text-align: center; color: $text-muted; }
    SliceViewer HeatMap { margin: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fake: Path | None = None
        self.real: Path | np.ndarray | str | None = None
        self._keys: tuple = ()

    def compose(self) -> ComposeResult:
        with Horizontal(classes="caption-row"):
            yield Static("generated", classes="caption", id="fake-caption")
            yield Static("real", classes="caption", id="real-caption")
        with Horizontal():
            yield HeatMap(id="fake-map")
            yield HeatMap(id="real-map")
        yield Slider(id="slice-slider")

    def on_mount(self) -> None:
        self.query_one(".caption-row").styles.height = 1

    def show(self, fake: Path | None, real: Path | np.ndarray | str | None, force: bool = False) -> None:
        """Point the viewer at the two cubes; reread only when one changed (or `force`)."""
        real_key = id(real) if isinstance(real, np.ndarray) else (real, isinstance(real, Path) and file_key(real))
        keys = (fake, fake and file_key(fake), real_key)
        if keys == self._keys and not force:
            return
        self.fake, self.real, self._keys = fake, real, keys
        self.redraw()

    def on_slider_changed(self, event: Slider.Changed) -> None:
        event.stop()
        self.redraw()

    def redraw(self) -> None:
        slider = self.query_one(Slider)
        index = slider.value
        shown = {}
        for which, path in (("fake", self.fake), ("real", self.real)):
            if isinstance(path, str):
                result = path
            else:
                result = read_slice(path, index) if path is not None else f"no {which} cube"
            shown[which] = result
            if not isinstance(result, str):
                slider.set_maximum(result[1] - 1)
        images = [r[0] for r in shown.values() if not isinstance(r, str)]
        logs = [np.log10(np.maximum(i, 0) + 1.0) for i in images]
        value_range = (min(float(l.min()) for l in logs), max(float(l.max()) for l in logs)) if logs else None
        for which, result in shown.items():
            heat = self.query_one(f"#{which}-map", HeatMap)
            caption = self.query_one(f"#{which}-caption", Static)
            if isinstance(result, str):
                heat.show(None, result)
                caption.update(which)
            else:
                heat.show(result[0], value_range=value_range)
                caption.update(f"{which}  slice {index}/{result[1] - 1}  (log10 counts+1)")
