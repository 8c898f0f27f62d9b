"""`nbgan sample`: chained sampling M3 -> M2 -> M1 (or Mu -> M2 -> M1) of cubes of any size, streamed to HDF5."""

from __future__ import annotations

import argparse
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
                             "what M3 makes whole), then the up-scalers")
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


def box_size_of(run, side: int) -> float | None:
    """Box side in Mpc/h of a cube of `side` voxels at the resolution the run was trained at.

    None when the run's config states no box size (its data files carried it).
    """
    box = run.config.data.declared_box_size()
    return None if box is None else box * side / run.config.level_size(run.scale)


def execute(args, runs, plans, attrs: dict, write_input=None) -> int:
    """Load generators, open the file, run the chain; shared by `sample` and `upscale`."""
    from nbgan_app import transforms
    from nbgan_app.sampling.chain import dataset_specs, run_chain
    from nbgan_app.sampling.progress import WaveReporter
    from nbgan_app.sampling.runs import checkpoint_of, load_generator
    from nbgan_app.sampling.writer import SampleFile

    config = runs[-1].config
    order = args.order or config.sample.order
    max_batch = args.max_batch or config.sample.max_batch
    steps = [checkpoint_of(r)[0] for r in runs]  # InputError before anything is written
    generators = [load_generator(p.run) if p.run is not None else None for p in plans]
    box = box_size_of(runs[-1], plans[-1].side)
    attrs = {**attrs, "runs": [str(r.path.resolve()) for r in runs], "checkpoint_steps": steps,
             "scales": [r.scale for r in runs], "seed": args.seed, "n_cubes": args.n,
             "transform": config.transform.__dict__, "order": order, "max_batch": max_batch,
             **({"box_size": box} if box is not None else {})}
    checked = tuple(k for k in attrs if k != "max_batch")  # the order keys the resume frontier
    started = time.time()
    with SampleFile(args.out, dataset_specs(plans), args.n, attrs, overwrite=args.overwrite,
                    resume=args.resume, checked=checked) as out, WaveReporter(False if args.quiet else None) as rep:
        if args.resume and out.complete:
            print(f"{args.out} is already complete")
            return 0
        if box is not None:
            out.h5["data"].attrs["box_size"] = box
        if write_input is not None:
            write_input(out)
        calls = run_chain(plans, generators, out, args.n, seed=args.seed, order=order, max_batch=max_batch,
                          to_counts=lambda y: transforms.backward(y, config.transform), progress=rep)
    side = plans[-1].side
    print(f"wrote {args.out}: {args.n} cubes of {side}^3 in {time.time() - started:.1f} s "
          f"({order}, generator calls {sum(calls.values())})")
    return 0


def run(args) -> int:
    from nbgan_app.sampling.chain import plan_chain
    from nbgan_app.sampling.runs import load_run

    check_counts_args(args, n=args.n, size=args.size, max_batch=args.max_batch)
    paths = [p for p in args.chain.split(",") if p]
    if not paths:
        raise InputError(f"--chain: expected run directories separated by commas. Received: {args.chain!r}")
    runs = [load_run(p) for p in paths]
    plans = plan_chain(runs, args.size)
    if sys.stderr.isatty() and not args.quiet:
        print(f"sampling {args.n} cubes of {plans[-1].side}^3 through levels "
              f"{', '.join(str(p.level) for p in plans)}", file=sys.stderr)
    return execute(args, runs, plans, {"command": "sample"})
