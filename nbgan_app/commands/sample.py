"""`nbgan sample`: chained sampling M3 -> M2 -> M1 (or Mu -> M2 -> M1) of cubes of any size, streamed to HDF5.

With `--workers N` the cubes are shared out among N Ray workers (`sampling.workers`,
docs/cluster.md): the same file, bit for bit, as one process writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nbgan_app.commands.train import add_device_flag
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
                                           "--order; the result is the file an uninterrupted run writes); "
                                           "with --workers, finish the cubes its workers had not written")
    parser.add_argument("--workers", metavar="N",
                        help="sample on N Ray workers, each a range of cubes (one GPU each where the cluster "
                             "has GPUs); needs the cluster extra: pip install 'nbgan[cluster]'")
    parser.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster for --workers, e.g. ray://head:10001 or head:6379 (default: "
                             "RAY_ADDRESS, else a local cluster of N workers started for this command)")
    add_device_flag(parser, "sample on this device (not with --workers: Ray places each worker)")
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


def __getattr__(name: str):
    # `nbgan upscale` imports ProgressLine from here; it lives in sampling.progress, loaded only when used
    if name == "ProgressLine":
        from nbgan_app.sampling.progress import ProgressLine

        return ProgressLine
    raise AttributeError(name)


def run(args) -> int:
    from nbgan_app.sampling import load_chain, sample_chain
    from nbgan_app.sampling.progress import ProgressLine

    n, size = whole_number("--n", args.n), whole_number("--size", args.size)
    seed, max_batch = sampling_numbers(args)
    workers = whole_number("--workers", args.workers)
    if args.address is not None and workers is None:
        raise InputError("--address: the cluster runs workers; give their number with --workers N")
    if args.device is not None:
        if workers is not None:
            raise InputError("--device: not with --workers, where Ray gives each worker its device "
                             "(a GPU each where the cluster has them)")
        from nbgan_app import devices

        devices.use_device(args.device)  # before load_chain: it starts the backend
    if workers is not None:
        from nbgan_app.sampling.workers import require_ray

        require_ray()  # the missing extra is the first thing to say, before any run is loaded
    chain = load_chain(args.chain, size)
    if sys.stderr.isatty() and not args.quiet:
        on = f" on {workers} workers" if workers is not None else ""
        print(f"sampling {n} cubes of {chain.side}^3 through levels "
              f"{', '.join(str(p.level) for p in chain.plans)}{on}", file=sys.stderr)
    with ProgressLine(enabled=not args.quiet) as progress:
        result = sample_chain(chain, n, args.out, seed=seed, order=args.order, max_batch=max_batch,
                              resume=args.resume, overwrite=args.overwrite, progress=progress,
                              workers=workers, address=args.address)
    print(result.summary())
    return 0
