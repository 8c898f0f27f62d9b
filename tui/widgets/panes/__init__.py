"""The tabs of the live run view; each implements RunPane, so the view treats them alike."""

from tui.widgets.panes.losses import LossesPane
from tui.widgets.panes.pane import RunPane, RunUpdate
from tui.widgets.panes.slices import SlicesPane
from tui.widgets.panes.statistics import StatisticsPane

# in tab order: the keys 1, 2, 3 of the dashboard select them by id
PANES = (LossesPane, StatisticsPane, SlicesPane)

__all__ = ["PANES", "LossesPane", "RunPane", "RunUpdate", "SlicesPane", "StatisticsPane"]
