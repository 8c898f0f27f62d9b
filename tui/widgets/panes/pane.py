"""The one interface of the live view's tabs, and the run update they are drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Protocol, runtime_checkable

from tui.runs import RunSummary


@dataclass(frozen=True)
class RunUpdate:
    """What the tabs know of the selected run at one refresh: its summary and its metrics records."""

    summary: RunSummary
    records: list[dict]

    @property
    def path(self) -> Path:
        return self.summary.path


@runtime_checkable
class RunPane(Protocol):
    """A tab of the live view (a TabPane).

    The view draws only the tab that is shown, and only when its `source_key` changed
    since it last drew it, because a plot redraw costs tens of milliseconds and the
    view refreshes every second while training writes.
    """

    id: str | None

    def source_key(self, run: RunUpdate) -> Hashable:
        """A cheap fingerprint of what the pane draws from (file sizes and times, record counts)."""
        ...

    def refresh_from(self, run: RunUpdate) -> None:
        """Redraw the pane from the run's files."""
        ...
