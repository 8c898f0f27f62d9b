"""Progress of a sampling run: one line with the share done and an ETA, for every command that samples.

`nbgan sample` (in one process or on workers), `nbgan upscale` and `nbgan demo`
report through `ProgressLine`. On a terminal it is one bar that rewrites
itself; elsewhere (a log, the dashboard) sparse lines `wave W/T level L  P%
ETA M:SS` on stderr, which the dashboard parses (`tui.processes.WAVE_LINE`).
"""

from __future__ import annotations

import shutil
import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLine:
    """The progress of a sampling run on stderr: one bar over all its levels, with an ETA.

    A callable `(wave, waves, level)` for `sampling.sample_chain` and
    `sampling.upscale` (`nbgan sample`, `nbgan upscale`, `nbgan demo`), which
    call `begin(work)` first (`sampling.api.work_of`: the (cube, patch) pairs
    each wave makes, so the ETA weighs a wave of 8 patches 8 times a wave of
    one); on workers, `report` gets the sums of all ranges. On a terminal one line rewrites itself
    (carriage return), at most every `refresh` seconds. Elsewhere (a log, the
    dashboard) it prints a line `wave W/T level L  P%  ETA M:SS` at the end of
    each level, at every `step` percent of the work and at least every `every`
    seconds of a slow run: a few tens of lines, not one per wave. The
    dashboard reads `wave W/T level L` (tui.processes.WAVE_LINE).

    It only counts and formats, after the sampler has the wave's patches on
    the host anyway: nothing here touches the device or adds a round trip.
    `enabled=False` prints nothing (--quiet).
    """

    def __init__(self, enabled: bool = True, stream=None, clock=time.monotonic, refresh: float = 0.2,
                 every: float = 60.0, step: int = 5):
        self.enabled, self.stream, self.clock = enabled, stream, clock
        self.refresh, self.every, self.step = refresh, every, step
        self.after: dict[tuple[int, int], tuple[int, int]] = {}  # (level, wave) -> (units done, units made)
        self.total = self.made_total = 0
        self.started: float | None = None
        self.last_print: float | None = None
        self.last_bucket = -1
        self.drawn = False
        self.ended: set[int] = set()  # levels whose last wave has been printed
        self.tty: bool | None = None  # asked once, at the first line

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc) -> bool:
        if self.drawn and self._tty():
            self._out().write("\n")
            self._out().flush()
        return False

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def _tty(self) -> bool:
        if self.tty is None:
            isatty = getattr(self._out(), "isatty", None)
            self.tty = bool(isatty and isatty())
        return self.tty

    def begin(self, work: list[tuple[int, list[tuple[int, int]]]]) -> None:
        """The work ahead: [(level, [(done, to do) per wave])], levels in the order they are made."""
        done = made = 0
        for level, per_wave in work:
            for wave, (before, todo) in enumerate(per_wave, 1):
                done, made = done + before + todo, made + todo
                self.after[(level, wave)] = (done, made)
        self.total, self.made_total = done, made
        self.started = self.clock()

    def __call__(self, wave: int, waves: int, level: int) -> None:
        done, made = self.after.get((level, wave), (None, None))
        self._show(wave, waves, level, done, made)

    def report(self, wave: int, waves: int, level: int, *, done: int, made: int, total: int,
               to_make: int) -> None:
        """Progress summed over many workers (`workers.Tally`), in (cube, patch) units.

        `done` of `total` units are in the file, `made` of the `to_make` this
        run makes were made by it (the ETA's rate); (wave, waves, level) is
        the least advanced worker's place, for the line.
        """
        self.total, self.made_total = total, to_make
        self._show(wave, waves, level, done, made)

    def _show(self, wave: int, waves: int, level: int, done: int | None, made: int | None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if self.started is None:
            self.started = now
        # whole percent, rounded down: 100% only once the last patch is made
        percent = done * 100 // self.total if done is not None and self.total else None
        elapsed = now - self.started
        eta = None
        if made is not None and made > 0:
            eta = elapsed * (self.made_total - made) / made
        elif made is not None and self.made_total == made:
            eta = 0.0  # nothing left to make (a resume of a finished level)
        if self._tty():
            self._draw(wave, waves, level, percent, elapsed, eta, now)
        else:
            self._line(wave, waves, level, percent, eta, now)

    def _draw(self, wave, waves, level, percent, elapsed, eta, now) -> None:
        end = wave == waves
        if not end and self.last_print is not None and now - self.last_print < self.refresh:
            return
        self.last_print = now
        width = 20
        filled = width * (percent or 0) // 100
        bar = "#" * filled + "-" * (width - filled)
        pct = f"{percent:3d}%" if percent is not None else "    "
        text = (f"[{bar}] {pct} level {level} wave {wave}/{waves} {_clock(elapsed)} elapsed"
                + (f" ETA {_clock(eta)}" if eta is not None else ""))
        # a line longer than the terminal wraps, and the carriage return would no longer rewrite it
        columns = shutil.get_terminal_size().columns
        self._out().write("\r" + text[:max(columns - 1, 20)] + "\x1b[K")
        self._out().flush()
        self.drawn = True

    def _line(self, wave, waves, level, percent, eta, now) -> None:
        bucket = int(percent // self.step) if percent is not None else self.last_bucket
        # a level's end once: workers' sums (`report`) can stay at the same place for a while
        end = wave == waves and level not in self.ended
        due = (end or bucket > self.last_bucket
               or (self.last_print is not None and now - self.last_print >= self.every)
               or self.last_print is None and now - self.started >= self.every)
        if not due:
            return
        self.last_print, self.last_bucket = now, max(bucket, self.last_bucket)
        if wave == waves:
            self.ended.add(level)
        text = f"wave {wave}/{waves} level {level}"
        if percent is not None:
            text += f"  {percent}%"
        if eta is not None:
            text += f"  ETA {_clock(eta)}"
        print(text, file=self._out(), flush=True)
