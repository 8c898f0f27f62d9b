"""`nbgan upscale`: up-scale given low-resolution count cubes with one run (the thesis's conditional evaluation)."""

from __future__ import annotations

from pathlib import Path

from nbgan_app.commands.sample import add_sampling_flags, check_counts_args, execute
from nbgan_app.errors import InputError

HELP = "up-scale given low-resolution count cubes with one trained M2/M1 run"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("upscale", help=HELP, description=HELP + ": forward transform, up-scale "
                                   "patch by patch, backward transform. With --from-fine the input holds "
                                   "full-resolution cubes that are first down-scaled as in training.")
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


def _coarse_levels(run, path: Path, from_fine: bool):
    """The input cubes in transformed space at the run's conditioning resolution, (N, s, s, s)."""
    from nbgan_app import pyramid, transforms
    from nbgan_app.cubes import load_cubes

    counts, _ = load_cubes([path])
    levels = transforms.forward(counts, run.config.transform)
    if from_fine:
        factor = run.config.factor(run.scale)
        if levels.shape[1] % factor:
            raise InputError(f"{path}: side {levels.shape[1]} is not divisible by the run's factor {factor}")
        levels = pyramid.block_mean(levels, factor, ndim=levels.ndim - 1)
    return levels


def run(args) -> int:
    from nbgan_app import scales
    from nbgan_app.sampling.chain import plan_chain
    from nbgan_app.sampling.runs import load_run

    check_counts_args(args, max_batch=args.max_batch)
    run_info = load_run(args.run)
    if not scales.scale(run_info.scale).conditional:
        raise InputError(f"run {args.run} has scale {run_info.scale}; upscale needs an M2 or M1 run")
    coarse = _coarse_levels(run_info, args.input, args.from_fine)
    if coarse.ndim != 4:
        raise InputError(f"{args.input}: expected 3-D cubes. Received shape {coarse.shape[1:]}")
    plans = plan_chain([run_info], coarse.shape[1] * run_info.config.factor(run_info.scale), given_input=True)
    args.n = coarse.shape[0]

    def write_input(out) -> None:
        target = out.target(plans[0].name)
        if not target.is_done((0, 0, 0)):
            for cube, values in enumerate(coarse):
                target.write(cube, (0, 0, 0), values)
            target.mark_done([(0, 0, 0)])

    return execute(args, [run_info], plans, {"command": "upscale", "input": str(args.input.resolve())},
                   write_input)
