"""`nbgan stats`: summary statistics of cube files or directories, as JSON (DESIGN.md layout)."""

from __future__ import annotations

import argparse

from nbgan_app.errors import InputError


def positive_float(text: str) -> float:
    """argparse type: a float > 0 (box sizes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="summary statistics (power spectrum, mass and peak histograms) of cube files",
        description=(
            "Compute the power spectrum, mass histogram and peak histogram of every cube under "
            "FILES_OR_DIRS and write their per-bin means and standard deviations as JSON: "
            '{"box_size", "n_cubes", "psd": {"k", "mean", "std"}, "mass_hist": {"edges", "mean", "std"}, '
            '"peak_hist": {"edges", "mean", "std"}}. k in h/Mpc, P in (Mpc/h)^3.'
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="FILES_OR_DIRS", help="cube files (HDF5, dataset 'data') or directories of them")
    parser.add_argument("--box-size", type=positive_float, metavar="L", help="box side in Mpc/h (wins over the files' box_size attribute)")
    parser.add_argument("--psd-bins", choices=("log", "linear"), default="log", help="log: the released 49 log bins (default); linear: width 2 pi/L (Pylians)")
    parser.add_argument("--peak-boundary", choices=("reflect", "wrap"), default="reflect", help="peak finder boundary: reflect (released, default) or wrap (periodic)")
    parser.add_argument("--json", required=True, metavar="OUT", help="output JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=run)


def resolve_box_size(box_size: float | None, where: str) -> float:
    """The box size, or an InputError naming the flag when neither files nor flag give one."""
    if box_size is None:
        raise InputError(f"box size unknown: {where} carry no box_size attribute; pass --box-size L (Mpc/h)")
    return box_size


def run(args) -> int:
    from nbgan_app.cubes import load_cubes
    from nbgan_app.stats.report import check_output_free, write_json
    from nbgan_app.stats.summary import summary

    check_output_free(args.json, args.overwrite)
    counts, box_size = load_cubes(args.inputs, args.box_size)
    box_size = resolve_box_size(box_size, "the cube files")
    result = summary(
        counts, box_size, psd_bins=args.psd_bins, ndim=counts.ndim - 1, peak_boundary=args.peak_boundary
    )
    write_json(args.json, result, overwrite=args.overwrite)
    print(f"{result['n_cubes']} cube(s) of {counts.shape[1:]} at {box_size:g} Mpc/h -> {args.json}")
    return 0
