"""Chained sampling for the dashboard, without UI: `nbgan sample`, then the statistics of its cubes.

The sampling screen calls `poll()` on a timer and shows `message`, `progress()`
and, at the end, `stats`. When the sample process ends with a complete file, the
samples are scored against the M1 run's real cubes: by `nbgan compare` (a
process, with the real-vs-real floor) when there are enough real cubes for a
floor, else in a thread (the same scores without it), since a floor is then
impossible and a process would only refuse. No step raises: a failure ends the
job with `failed` set and the reason in `message`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from nbgan_app.stats.scores import FLOOR_MIN
from tui import processes
from tui.real_data import real_cubes, score_in_process
from tui.samples import is_complete, read_stats_pair


class ChainSampling:
    """One run of the chain M3 -> M2 -> M1 into `out`, and its scoring; started on construction."""

    def __init__(self, chain: list[Path], n: int, size: int | None, order: str, out: Path,
                 device: str | None = None):
        self.m1 = Path(chain[-1])  # its config names the real cubes the samples imitate
        self.device = device  # the sampler's device ("gpu:N" or "cpu"); None: the environment's
        self.sample = processes.start_sampling([Path(c) for c in chain], n, size, order, out, device=device)
        self.compare: processes.ChildJob | None = None
        where = f" on {device}" if device else ""
        self.message = f"sampling into {out}{where} (log {self.sample.log.name})"
        self.note = ""  # which real cubes the samples are scored against
        self.stats: dict | None = None  # {"real", "fake", "scores"} once scored
        self.done = False
        self.failed = False
        self._thread: threading.Thread | None = None
        self._scored: tuple[dict | str, bool] | None = None  # the thread's (result, failed)

    def progress(self) -> tuple[int, int, int | None] | None:
        """(wave, waves, level) of the sampler's last progress line, or None before the first."""
        return self.sample.progress()

    def poll(self) -> None:
        """Notice the end of the current step (a process or the scoring thread) and start the next."""
        if self.done:
            return
        if self._thread is not None:
            if not self._thread.is_alive():
                self._finish(*self._scored)
            return
        job = self.compare or self.sample
        code = job.process.poll()
        if code is None:
            return
        if job is self.compare:
            if code != 0:
                self._finish(f"nbgan compare failed (exit {code})\n{job.log_tail()}", failed=True)
            else:
                self._finish(read_stats_pair(job.out))
        elif code != 0 or not is_complete(job.out):
            why = f"exit code {code}" if code else "output incomplete (complete attribute not set)"
            self._finish(f"sampling failed: {why}\n{job.log_tail()}", failed=True)
        else:
            self._score()

    def _score(self) -> None:
        found = real_cubes(self.m1)
        if isinstance(found, str):
            self._finish(f"samples written to {self.sample.out}; no statistics: {found}")
            return
        files, self.note = found.for_scores()
        out = self.sample.out
        self.message = f"samples complete: {out.name}; computing statistics ({self.note})"
        if len(files) >= FLOOR_MIN:
            self.compare = processes.start_compare(files, out, out.with_suffix(".stats.json"), found.box_size)
            return
        self._thread = threading.Thread(target=self._score_here, args=(files, found.box_size), daemon=True,
                                        name="chain-scores")
        self._thread.start()

    def _score_here(self, files: list[Path], box_size: float | None) -> None:
        """In the thread: numpy statistics, nothing written."""
        try:
            self._scored = (score_in_process(files, self.sample.out, box_size), False)
        except Exception as exc:  # unreadable or mismatched cubes: a message, never a crash
            self._scored = (f"statistics failed: {type(exc).__name__}: {exc}", True)

    def _finish(self, result: dict | str, failed: bool = False) -> None:
        self.done, self.failed = True, failed
        if isinstance(result, dict):
            self.stats = result
            where = f" and {self.compare.out.name}" if self.compare else ""
            self.message = f"done: {self.sample.out}{where}\n{self.note}"
        else:
            self.message = result
