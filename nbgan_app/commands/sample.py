"""`nbgan sample`: chained sampling M3 -> M2 -> M1 (or Mu -> M2 -> M1) of cubes of any size, streamed to HDF5."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nbgan_app.errors import InputError

HELP = "chained sampling of count cubes of any size, patch by patch, streamed to HDF5"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("sample", help=HELP, description=HELP + ". The output's dataset `data` "
                                   "(N, S, S, S) holds counts; coarser levels are kept under levels/.")
    parser.add_argument("--chain", required=True, metavar="RUN3,RUN2,RUN1",
                        help="run directories, coarsest first: M3 (or a uni-scale run for sizes beyond "
                             "what M3 makes whole), then the up-scalers; or a preset name (nbgan presets)")
    parser.add_argument("--n", type=int, required=True, help="number of cubes")
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    parser.add_argument("--size", type=int, help="output side in voxels (default: the last run's level side)")
    add_sampling_flags(parser, resume_help="finish an interrupted run's output file (same chain, --n, --seed and "
                                           "--order; the result is the file an uninterrupted run writes)")
    parser.set_defaults(func=run)


def add_sampling_flags(parser: argparse.ArgumentParser, resume_help: str) -> None:
    """Flags shared with `nbgan upscale`; what --resume must keep differs between the two."""
    parser.add_argument("--order", choices=("wavefront", "raster"),
                        help="patch order (default: the run config's sample.order, wavefront)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--max-batch", type=int, help="most patches per generator call "
                                                      "(default: the run config's sample.max_batch)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help=resume_help)
    group.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def check_counts_args(args, **values) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')}: expected >= 1. Received: {value}")


def run(args) -> int:
    from nbgan_app.sampling import load_chain, sample_chain
    from nbgan_app.sampling.progress import WaveReporter

    check_counts_args(args, n=args.n, size=args.size, max_batch=args.max_batch)
    chain = load_chain(args.chain, args.size)
    if sys.stderr.isatty() and not args.quiet:
        print(f"sampling {args.n} cubes of {chain.side}^3 through levels "
              f"{', '.join(str(p.level) for p in chain.plans)}", file=sys.stderr)
    with WaveReporter(False if args.quiet else None) as progress:
        result = sample_chain(chain, args.n, args.out, seed=args.seed, order=args.order, max_batch=args.max_batch,
                              resume=args.resume, overwrite=args.overwrite, progress=progress)
    print(result.summary())
    return 0
