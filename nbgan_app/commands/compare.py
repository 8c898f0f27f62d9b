"""`nbgan compare`: scores of a fake set of cubes against a real set, with the real-vs-real floor."""

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
    parser.add_argument("--json", required=True, metavar="OUT", help="output JSON file")
    parser.add_argument("--plot", metavar="OUT.png", help="also draw the three statistics, real against fake (needs matplotlib)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nbgan_app.cubes import common_box_size, load_cubes
    from nbgan_app.stats.report import check_output_free, score_table, write_json
    from nbgan_app.stats.scores import compare

    check_output_free(args.json, args.overwrite)
    check_output_free(args.plot, args.overwrite)
    if args.floor_splits < 1:
        raise InputError(f"--floor-splits must be at least 1; received {args.floor_splits}")
    if args.plot is not None:
        from nbgan_app.plots import require_matplotlib

        require_matplotlib()
    real, real_box = load_cubes(args.real, args.box_size)
    fake, fake_box = load_cubes(args.fake, args.box_size)
    box_size = common_box_size(args.box_size, real_box, fake_box)
    if real.shape[1:] != fake.shape[1:]:
        raise InputError(f"real and fake grids differ: real cubes {real.shape[1:]}, fake cubes {fake.shape[1:]}")
    result = compare(
        real, fake, box_size, psd_bins=args.psd_bins, ndim=real.ndim - 1, floor=True,
        n_splits=args.floor_splits, seed=args.seed, peak_boundary=args.peak_boundary,
    )
    if args.plot is not None:
        from nbgan_app.plots import save_compare_plot

        save_compare_plot(result, args.plot, overwrite=args.overwrite)
    write_json(args.json, result, overwrite=args.overwrite)
    print(score_table(result))
    return 0
