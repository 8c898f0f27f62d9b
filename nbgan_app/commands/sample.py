"""`nbgan sample`: chained sampling M3 -> M2 -> M1 (or Mu -> M2 -> M1) of cubes of any size, streamed to HDF5."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from nbgan_app.errors import InputError

HELP = "chained sampling of count cubes of any size, patch by patch, streamed to HDF5"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("sample", help=HELP, description=HELP + ". The output's dataset `data` "
                                   "(N, S, S, S) holds counts; coarser levels are kept under levels/.")
    parser.add_argument("--chain", required=True, metavar="RUN3,RUN2,RUN1",
                        help="run directories, coarsest first: M3 (or a uni-scale run for sizes beyond "
                             "what M3 makes whole), then the up-scalers; or a preset name (nbgan presets)")
    parser.add_argument("--n", required=True, metavar="N", help="number of cubes")
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    parser.add_argument("--size", metavar="S", help="output side in voxels (default: the last run's level side)")
    add_sampling_flags(parser, resume_help="finish an interrupted run's output file (same chain, --n, --seed and "
                                           "--order; the result is the file an uninterrupted run writes)")
    parser.set_defaults(func=run)


def add_sampling_flags(parser: argparse.ArgumentParser, resume_help: str) -> None:
    """Flags shared with `nbgan upscale`; what --resume must keep differs between the two.

    The numbers are read by `whole_number` in `run`, so that a bad one is a
    one-line InputError like every other bad input.
    """
    parser.add_argument("--order", choices=("wavefront", "raster"),
                        help="patch order (default: the run config's sample.order, wavefront)")
    parser.add_argument("--seed", default="0", metavar="K", help="noise seed, 0 to 2^63-1 (default 0)")
    parser.add_argument("--max-batch", metavar="B", help="most patches per generator call "
                                                         "(default: the run config's sample.max_batch)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help=resume_help)
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing output file, once the new one is complete")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def whole_number(flag: str, text: str | None, low: int = 1, high: int | None = None,
                 high_text: str | None = None) -> int | None:
    """The integer a flag was given (None when it was not); InputError naming the flag otherwise.

    `high_text` shows `high` in the message (2^63-1 reads better than its digits).
    """
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"from {low} to {high_text or high}"
        raise InputError(f"{flag}: expected a whole number {bounds}. Received: {text!r}")
    return value


def sampling_numbers(args) -> tuple[int, int | None]:
    """(--seed, --max-batch) of `nbgan sample` or `nbgan upscale`, checked."""
    from nbgan_app.sampling.api import SEED_MAX

    return whole_number("--seed", args.seed, 0, SEED_MAX, "2^63-1"), whole_number("--max-batch", args.max_batch)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLine:
    """The progress of a sampling run on stderr: one bar over all its levels, with an ETA.

    A callable `(wave, waves, level)` for `sampling.sample_chain` and
    `sampling.upscale`, which call `begin(work)` first (`sampling.api.work_of`:
    the (cube, patch) pairs each wave makes, so the ETA weighs a wave of 8
    patches 8 times a wave of one). On a terminal one line rewrites itself
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
        if not self.enabled:
            return
        now = self.clock()
        if self.started is None:
            self.started = now
        done, made = self.after.get((level, wave), (None, None))
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
        due = (wave == waves or bucket > self.last_bucket
               or (self.last_print is not None and now - self.last_print >= self.every)
               or self.last_print is None and now - self.started >= self.every)
        if not due:
            return
        self.last_print, self.last_bucket = now, max(bucket, self.last_bucket)
        text = f"wave {wave}/{waves} level {level}"
        if percent is not None:
            text += f"  {percent}%"
        if eta is not None:
            text += f"  ETA {_clock(eta)}"
        print(text, file=self._out(), flush=True)


def run(args) -> int:
    from nbgan_app.sampling import load_chain, sample_chain

    n, size = whole_number("--n", args.n), whole_number("--size", args.size)
    seed, max_batch = sampling_numbers(args)
    chain = load_chain(args.chain, size)
    if sys.stderr.isatty() and not args.quiet:
        print(f"sampling {n} cubes of {chain.side}^3 through levels "
              f"{', '.join(str(p.level) for p in chain.plans)}", file=sys.stderr)
    with ProgressLine(enabled=not args.quiet) as progress:
        result = sample_chain(chain, n, args.out, seed=seed, order=args.order, max_batch=max_batch,
                              resume=args.resume, overwrite=args.overwrite, progress=progress)
    print(result.summary())
    return 0
