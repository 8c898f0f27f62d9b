"""A 2-D array as a terminal heat map: two pixels per cell with half blocks, 256-colour palette only.

Over SSH COLORTERM is usually not forwarded, so Textual falls back to 256
colours; the palette below uses xterm-256 indices directly (a black-red-
yellow-white ramp), which every such terminal shows the same.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

RAMP = (16, 52, 88, 124, 160, 196, 202, 208, 214, 220, 226, 227, 228, 229, 230, 231)
STYLES = [[Style(color=Color.from_ansi(top), bgcolor=Color.from_ansi(bottom)) for bottom in RAMP] for top in RAMP]


def fit(image: np.ndarray, columns: int, rows: int) -> np.ndarray:
    """Resize `image` by an integer factor to fit `columns` x `2*rows` pixels: block means to
    shrink it, repeated pixels to enlarge it (a 4^3 coarse level would be a speck otherwise)."""
    columns, pixel_rows = max(1, columns), max(1, 2 * rows)
    grow = min(pixel_rows // image.shape[0], columns // image.shape[1])
    if grow > 1:
        return np.repeat(np.repeat(image, grow, axis=0), grow, axis=1)
    factor = max(1, int(np.ceil(max(image.shape[0] / pixel_rows, image.shape[1] / columns))))
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def to_levels(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Palette indices of log10(counts + 1) between `lo` and `hi`."""
    scaled = (np.log10(np.maximum(image, 0) + 1.0) - lo) / max(hi - lo, 1e-12)
    return np.clip((scaled * (len(RAMP) - 1)).round(), 0, len(RAMP) - 1).astype(int)


class HeatMap(Widget):
    """Shows a 2-D count array (or a message when there is none)."""

    DEFAULT_CSS = """
    HeatMap { width: 1fr; height: 1fr; content-align: center middle; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.image: np.ndarray | None = None
        self.message = "no data"
        self.range = (0.0, 1.0)

    def show(self, image: np.ndarray | None, message: str = "", value_range: tuple[float, float] | None = None):
        """`image` in counts; `value_range` in log10(counts + 1), shared by side-by-side maps."""
        self.image, self.message = image, message
        if image is not None:
            logs = np.log10(np.maximum(image, 0) + 1.0)
            self.range = value_range or (float(logs.min()), float(logs.max()))
        self.refresh()

    def render(self) -> Text:
        if self.image is None:
            return Text(self.message or "no data", style="italic")
        levels = to_levels(fit(self.image, self.size.width, self.size.height), *self.range)
        if levels.shape[0] % 2:
            levels = np.vstack([levels, np.zeros_like(levels[:1])])
        text = Text()
        for top, bottom in zip(levels[0::2], levels[1::2]):
            for t, b in zip(top, bottom):
                text.append("▀", STYLES[t][b])
            text.append("\n")
        return text
