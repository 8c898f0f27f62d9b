"""Progress display for long commands: a rich bar on a terminal, plain lines otherwise.

Plain lines go to stderr, one per update, so logs and the dashboard can read them.
"""

from __future__ import annotations

import sys
import time


class StepReporter:
    """Reports training steps; use as a context manager around the loop.

    Args:
        total: the step the run trains to.
        start: the step it starts from (after a resume).
        enabled: True for a bar, False for nothing, None to pick a bar on a
            terminal and plain lines otherwise.
    """

    def __init__(self, total: int, start: int = 0, enabled: bool | None = None):
        self.total, self.start, self.enabled = total, start, enabled
        self.bar = None
        self.task = None
        self.started = time.time()

    def __enter__(self):
        if self.enabled is not False and (self.enabled or sys.stderr.isatty()):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                TextColumn("{task.fields[info]}"), transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, record: dict) -> None:
        rate = (step - self.start) / max(time.time() - self.started, 1e-9)
        info = f"critic {record['critic_loss']:.4g}  W {record['wasserstein']:.4g}  {rate:.2f} step/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.enabled is not False:
            print(f"step {step}/{self.total}  {info}", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
