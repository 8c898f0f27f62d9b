"""Progress of a sampling run, per wave: a rich bar on a terminal, plain lines otherwise.

The plain lines (`wave 3/22 level 1`, on stderr) are what the dashboard parses.
"""

from __future__ import annotations

import sys


class WaveReporter:
    """Callable `(wave, waves, level)`; use as a context manager around the run."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled
        self.bar = None
        self.tasks: dict[int, object] = {}

    def __enter__(self) -> "WaveReporter":
        if self.enabled is not False and (self.enabled or sys.stderr.isatty()):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True))
            self.bar.__enter__()
        return self

    def __call__(self, wave: int, waves: int, level: int) -> None:
        if self.bar is not None:
            if level not in self.tasks:
                self.tasks[level] = self.bar.add_task(f"level {level} waves", total=waves)
            self.bar.update(self.tasks[level], completed=wave)
        elif self.enabled is not False:
            print(f"wave {wave}/{waves} level {level}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
