"""Progress display for long commands: a rich bar on a terminal, plain lines otherwise.

Plain lines go to stderr, one per update, so logs and the dashboard can read them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class StepReporter:
    """Reports training steps; use as a context manager around the loop.

    The rate shown (steps per second) counts only the steps this process
    trained, over the wall-clock time it spent on them: from its first report
    to the latest. So neither the steps of an earlier process (a resumed run
    starts at `start`) nor this one's start-up (building, compiling) distort
    it; it shows from the second report on.

    Args:
        total: the step the run trains to.
        start: the step it starts from (after a resume).
        enabled: True for a bar, False for nothing, None to pick a bar on a
            terminal and plain lines otherwise.
        clock: seconds, monotonic (for tests).
    """

    def __init__(self, total: int, start: int = 0, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.start, self.enabled = total, start, enabled
        self.clock = clock
        self.bar = None
        self.task = None
        self.first: tuple[int, float] | None = None  # (step, time) of this process's first report

    def __enter__(self):
        if self.enabled is not False and (self.enabled or sys.stderr.isatty()):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                TextColumn("{task.fields[info]}"), transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def rate(self, step: int) -> float | None:
        """Steps per second since this process's first report, or None before its second (call in `update` order)."""
        now = self.clock()
        if self.first is None or step <= self.first[0]:
            self.first = self.first or (step, now)
            return None
        return (step - self.first[0]) / max(now - self.first[1], 1e-9)

    def update(self, step: int, record: dict) -> None:
        rate = self.rate(step)
        info = f"critic {record['critic_loss']:.4g}  W {record['wasserstein']:.4g}"
        if rate is not None:
            info += f"  {rate:.2f} step/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.enabled is not False:
            print(f"step {step}/{self.total}  {info}", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
