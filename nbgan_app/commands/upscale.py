"""`nbgan upscale`: up-scale given low-resolution count cubes with one run (the thesis's conditional evaluation)."""

from __future__ import annotations

from pathlib import Path

from nbgan_app.commands.sample import ProgressLine, add_sampling_flags, sampling_numbers

HELP = "up-scale given low-resolution count cubes with one trained M2/M1 run"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("upscale", help=HELP, description=HELP + ": forward transform, up-scale "
                                   "patch by patch, backward transform. With --from-fine the input holds "
                                   "full-resolution cubes that are first down-scaled as in training. The input's "
                                   "voxels (its box_size over its side) must be those the run takes; the "
                                   "output keeps the input's box_size.")
    parser.add_argument("--run", required=True, type=Path, help="run directory of an M2 or M1 run")
    parser.add_argument("--input", required=True, type=Path, help="HDF5 cube file or directory (counts)")
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    parser.add_argument("--from-fine", action="store_true",
                        help="the input is at the run's own resolution: block-average it (in transformed "
                             "space) by the run's factor first")
    add_sampling_flags(parser, resume_help="finish an interrupted upscale's output file: up-scale only the "
                                           "patches not yet written (same --run and its checkpoint, --input, "
                                           "--from-fine, --seed and --order; the result is the file an "
                                           "uninterrupted upscale writes)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nbgan_app.sampling import upscale

    seed, max_batch = sampling_numbers(args)
    with ProgressLine(enabled=not args.quiet) as progress:
        result = upscale(args.run, args.input, args.out, from_fine=args.from_fine, seed=seed,
                         order=args.order, max_batch=max_batch, resume=args.resume, overwrite=args.overwrite,
                         progress=progress)
    print(result.summary())
    return 0
