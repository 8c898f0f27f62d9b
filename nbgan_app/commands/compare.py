"""`nbgan compare`: scores of a fake set of cubes against a real set, with the real-vs-real floor.

The floor scores disjoint halves of the real set against each other, so the
real set must be different cubes: a file given twice (by any spelling,
symlink or hard link), a file both in --real and --fake, or two identical real
cubes (a copied file) is refused, as is a cube holding no particles. (A fake
set whose values equal real cubes read from other files is allowed: comparing
a set with a copy of itself is a legitimate check of the score's ceiling.) 2-D slices are compared as `nbgan stats`
treats them (P(k) in (Mpc/h)^2).
"""

from __future__ import annotations

from nbgan_app.commands.stats import positive_float
from nbgan_app.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="score fake cubes against real ones (released score, log-L2 monitor, fractional differences, floor)",
        description=(
            "Compare a fake set of cubes with a real set on the power spectrum, mass histogram and peak "
            "histogram: the released score (1 / Frechet distance, higher is better), the released log-L2 "
            "monitor, the per-bin fractional difference of the means, and the same scores between random "
            "disjoint halves of the real set (the real-vs-real floor)."
        ),
    )
    parser.add_argument("--real", required=True, nargs="+", metavar="A", help="real cube files or directories (at least 4 cubes)")
    parser.add_argument("--fake", required=True, nargs="+", metavar="B", help="fake cube files or directories (at least 2 cubes)")
    parser.add_argument("--box-size", type=positive_float, metavar="L", help="box side in Mpc/h for both sets (wins over the files)")
    parser.add_argument("--psd-bins", choices=("log", "linear"), default="log", help="power-spectrum bins (default: the released log bins)")
    parser.add_argument("--peak-boundary", choices=("reflect", "wrap"), default="reflect", help="peak finder boundary (default: reflect, as released)")
    parser.add_argument("--floor-splits", type=int, default=20, metavar="N", help="random half-splits of the real set for the floor (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the half-splits (default 0)")
    parser.add_argument("--json", required=True, metavar="OUT", help="output JSON file (its directory must exist)")
    parser.add_argument("--plot", metavar="OUT.png", help="also draw the three statistics, real against fake (needs matplotlib)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nbgan_app.commands.stats import check_not_an_input
    from nbgan_app.cubes import (check_disjoint, check_distinct, check_not_empty, common_box_size,
                                 list_cube_files, load_cube_set)
    from nbgan_app.stats.report import check_output_free, score_table, write_json
    from nbgan_app.stats.scores import check_sets, compare

    check_output_free(args.json, args.overwrite)
    check_output_free(args.plot, args.overwrite)
    if args.plot is not None and Path(args.plot).resolve() == Path(args.json).resolve():
        raise InputError(f"--plot and --json are the same file {args.json}; give them different names")
    if args.floor_splits < 1:
        raise InputError(f"--floor-splits must be at least 1; received {args.floor_splits}")
    if args.seed < 0:
        raise InputError(f"--seed: expected a whole number >= 0 (the half-splits' seed); received {args.seed}")
    real_files, fake_files = list_cube_files(args.real), list_cube_files(args.fake)
    check_disjoint(real_files, fake_files, "--real", "--fake")
    for flag, out in (("--json", args.json), ("--plot", args.plot)):
        check_not_an_input(out, flag, real_files + fake_files)
    if args.plot is not None:
        from nbgan_app.plots import require_matplotlib

        require_matplotlib()
    real = load_cube_set(args.real, args.box_size)
    fake = load_cube_set(args.fake, args.box_size)
    box_size = common_box_size(args.box_size, real.box_size, fake.box_size)
    check_sets(real.counts, fake.counts, with_floor=True)
    check_not_empty(real.counts, real.labels)
    check_not_empty(fake.counts, fake.labels)
    check_distinct(real.counts, real.labels, "real cubes (--real)")
    result = compare(
        real.counts, fake.counts, box_size, psd_bins=args.psd_bins, ndim=real.counts.ndim - 1, floor=True,
        n_splits=args.floor_splits, seed=args.seed, peak_boundary=args.peak_boundary,
    )
    if args.plot is not None:
        from nbgan_app.plots import save_compare_plot

        save_compare_plot(result, args.plot, overwrite=args.overwrite)
    write_json(args.json, result, overwrite=args.overwrite)
    print(score_table(result))
    return 0
