"""Progress of a sampling run, per wave: a rich bar on a terminal, plain lines otherwise.

The plain lines (`wave 3/22 level 1`, on stderr) are what the dashboard parses.
"""

from __future__ import annotations

import sys


class WaveReporter:
    """Callable `(wave, waves, level)`; use as a context manager around the run.

    `enabled`: None, a bar on a terminal and plain lines otherwise; True, a
    bar; False, nothing. The bar starts at the first wave, so a run that
    fails before it (a bad chain, an existing output) draws none.
    """

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled
        self.bar = None
        self.tasks: dict[int, object] = {}

    def __enter__(self) -> "WaveReporter":
        return self

    def _start_bar(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=Console(stderr=True))
        bar.__enter__()
        return bar

    def __call__(self, wave: int, waves: int, level: int) -> None:
        if self.enabled is False:
            return
        if self.bar is None and (self.enabled or sys.stderr.isatty()):
            self.bar = self._start_bar()
        if self.bar is None:
            print(f"wave {wave}/{waves} level {level}", file=sys.stderr, flush=True)
            return
        if level not in self.tasks:
            self.tasks[level] = self.bar.add_task(f"level {level} waves", total=waves)
        self.bar.update(self.tasks[level], completed=wave)

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
