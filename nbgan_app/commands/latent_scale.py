"""`nbgan latent-scale`: choose the spread one run's latents are drawn with, on validation boxes."""

from __future__ import annotations

from pathlib import Path

from nbgan_app.errors import InputError

HELP = "choose the scale of one run's sampling latent (N(0, s^2)) on fresh validation boxes"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "latent-scale", help=HELP,
        description=HELP + ". The chain is sampled from latents under each candidate scale of the run of "
                    "--scale and each sampling seed, and scored against PM boxes simulated with the seeds "
                    "right after the training suite's (the runs' [data.simulation]; not the test boxes of "
                    "`nbgan demo`). The scale with the "
                    "lowest mean of the median PSD, mass and peak errors is written to the run's "
                    "latent_scale.json; `nbgan sample` then draws that generator's latents with it.")
    parser.add_argument("--chain", required=True, metavar="RUN3,RUN2,RUN1",
                        help="run directories, coarsest first, or a preset name (nbgan presets)")
    parser.add_argument("--scale", required=True, choices=("3", "2", "1", "uni"), help="the run to tune")
    parser.add_argument("--values", default="0.8,0.9,1,1.1,1.2", metavar="S,S,...",
                        help="candidate scales (default 0.8,0.9,1,1.1,1.2)")
    parser.add_argument("--seeds", default="1,2,3,4,5,6", metavar="K,K,...",
                        help="sampling seeds; errors are medians over them (default 1,2,3,4,5,6)")
    parser.add_argument("--boxes", default="32", metavar="N", help="validation boxes (default 32)")
    parser.add_argument("--n", default="32", metavar="N", help="cubes drawn for each scale and seed (default 32)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run's earlier choice for the same generator")
    parser.set_defaults(func=run)


def _numbers(flag: str, text: str, kind: type) -> list:
    """A comma-separated list of distinct numbers; InputError naming the flag otherwise."""
    try:
        values = [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values or len(set(values)) != len(values):
        raise InputError(f"{flag}: expected distinct comma-separated numbers. Received: {text!r}")
    return values


def run(args) -> int:
    from nbgan_app.commands.sample import whole_number
    from nbgan_app.latent_scale import FILE, check_scale, current_choice, write_choice
    from nbgan_app.presets import resolve_chain
    from nbgan_app.sampling.api import check_seed
    from nbgan_app.sampling.runs import load_run
    from nbgan_app.study.latent import choose_scale

    values = [check_scale(v, "--values") for v in _numbers("--values", args.values, float)]
    seeds = [check_seed(s, "--seeds") for s in _numbers("--seeds", args.seeds, int)]
    boxes, n = whole_number("--boxes", args.boxes, 4), whole_number("--n", args.n)
    chain = resolve_chain(args.chain)
    runs = {load_run(path).scale: path for path in chain}
    if args.scale not in runs:
        raise InputError(f"--scale {args.scale}: the chain has no run of that scale (scales {', '.join(runs)})")
    tuned = Path(runs[args.scale])
    earlier = current_choice(tuned)[1]
    if earlier is not None and not args.overwrite:
        raise InputError(f"{tuned / FILE} already holds a choice for this generator (latent scale "
                         f"{earlier['latent_scale']:g}); give --overwrite to choose again")
    record = {**choose_scale(chain, args.scale, values, seeds, boxes, n), "chain": args.chain}
    path = write_choice(tuned, record)
    print(f"chose latent scale {record['latent_scale']:g} for run {tuned} (step {record['step']}): wrote {path}")
    return 0
