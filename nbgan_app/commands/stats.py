"""`nbgan stats`: summary statistics of cube files or directories, as JSON (docs/design.md layout).

2-D fields are supported, through the same code path as cubes: a file whose
`data` is (G, G), or a batch (N, G, G) of slices, gives the 2-D power
spectrum of each slice's count contrast, with k in h/Mpc from the slice side
L (k_F = 2 pi / L) and P in (Mpc/h)^2, next to the mass and peak histograms of
its pixels (5 x 5 peak neighbourhoods). The JSON layout is the same; the
dimension shows in the grid the command prints. Mixing 2-D and 3-D files is
an error (their shapes differ).

Inputs are refused, one line naming the culprit, when a file is given twice
(by any spelling, symlink or hard link), a cube holds no particles, or the box
side is not a finite number of Mpc/h; the output when it is a directory, one
of the inputs, or in a directory that does not exist.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nbgan_app.errors import InputError


def positive_float(text: str) -> float:
    """argparse type: a box side in Mpc/h, finite, > 0 and at most `cubes.MAX_BOX_SIZE`."""
    from nbgan_app.cubes import check_box_size

    try:
        return check_box_size(text, "box side")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="summary statistics (power spectrum, mass and peak histograms) of cube files",
        description=(
            "Compute the power spectrum, mass histogram and peak histogram of every cube under "
            "FILES_OR_DIRS and write their per-bin means and standard deviations as JSON: "
            '{"box_size", "n_cubes", "psd": {"k", "mean", "std"}, "mass_hist": {"edges", "mean", "std"}, '
            '"peak_hist": {"edges", "mean", "std"}}. k in h/Mpc, P in (Mpc/h)^3. '
            "2-D fields (files of shape (G, G), or batches of slices (N, G, G)) are supported: P(k) is "
            "then the 2-D spectrum of each slice, in (Mpc/h)^2, with k from the slice side L. "
            "Each file may be given once; cubes holding no particles are refused."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="FILES_OR_DIRS", help="cube files (HDF5, dataset 'data') or directories of them")
    parser.add_argument("--box-size", type=positive_float, metavar="L", help="box (or slice) side in Mpc/h (wins over the files' box_size attribute)")
    parser.add_argument("--psd-bins", choices=("log", "linear"), default="log", help="log: the released 49 log bins (default); linear: width 2 pi/L (Pylians)")
    parser.add_argument("--peak-boundary", choices=("reflect", "wrap"), default="reflect", help="peak finder boundary: reflect (released, default) or wrap (periodic)")
    parser.add_argument("--json", required=True, metavar="OUT", help="output JSON file (its directory must exist)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=run)


def resolve_box_size(box_size: float | None, where: str) -> float:
    """The box size, or an InputError naming the flag when neither files nor flag give one."""
    if box_size is None:
        raise InputError(f"box size unknown: {where} carry no box_size attribute; pass --box-size L (Mpc/h)")
    return box_size


def check_not_an_input(out: str | os.PathLike | None, flag: str, files: list[Path]) -> None:
    """Refuse an output that is one of the input files (under any spelling): --overwrite would destroy it."""
    from nbgan_app.cubes import file_identity

    if out is None or not Path(out).is_file():
        return
    target = file_identity(Path(out))
    for path in files:
        if file_identity(path) == target:
            raise InputError(f"{flag} {out} is also an input ({path}); write the result to another file")


def run(args) -> int:
    from nbgan_app.cubes import check_not_empty, list_cube_files, load_cube_set
    from nbgan_app.stats.report import check_output_free, write_json
    from nbgan_app.stats.summary import summary

    check_output_free(args.json, args.overwrite)
    check_not_an_input(args.json, "--json", list_cube_files(args.inputs))
    cubes = load_cube_set(args.inputs, args.box_size)
    box_size = resolve_box_size(cubes.box_size, "the cube files")
    check_not_empty(cubes.counts, cubes.labels)
    counts = cubes.counts
    ndim = counts.ndim - 1
    result = summary(counts, box_size, psd_bins=args.psd_bins, ndim=ndim, peak_boundary=args.peak_boundary)
    write_json(args.json, result, overwrite=args.overwrite)
    kind = "cube(s)" if ndim == 3 else "2-D slice(s), P(k) in (Mpc/h)^2,"
    print(f"{result['n_cubes']} {kind} of {counts.shape[1:]} at {box_size:g} Mpc/h -> {args.json}")
    return 0
