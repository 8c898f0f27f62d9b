"""`nbgan ablate`: the quality ablation of docs/quality.md (variants on equal step budgets)."""

from __future__ import annotations

HELP = "train config variants on equal step budgets and score them on fresh PM boxes (docs/quality.md)"
DEFAULT_OUT = "checkpoints/ablation"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("ablate", help=HELP, description=HELP + ". Reruns continue where they "
                                   "stopped: scored segments are kept, interrupted runs resume.")
    parser.add_argument("--plan", default="configs/ablation.toml", metavar="TOML",
                        help="the variants (default configs/ablation.toml)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="run directories and results (default checkpoints/ablation)")
    parser.add_argument("--sections", metavar="m3,m2,m1", help="only these sections of the plan")
    parser.add_argument("--figure", metavar="PNG", help="only draw the quality-against-time curves of --out, "
                        "and print the results as a Markdown table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nbgan_app.outputs import check_output_dir
    from nbgan_app.study import ablation

    if args.figure:
        ablation.curves_figure(Path(args.out), Path(args.figure))
        plan = ablation.read_plan(Path(args.plan))
        order = [f"{section}/{v['name']}" for section, variants in plan["sections"].items() for v in variants]
        print("\n".join(ablation.markdown_results(Path(args.out), order)))
        return 0
    sections = [s for s in args.sections.split(",") if s] if args.sections else None
    # hours of training follow: a typo in --out fails now (the default is the project's own layout)
    check_output_dir(Path(args.out), parents=args.out == DEFAULT_OUT)
    ablation.run_plan(Path(args.plan), Path(args.out), sections, log=lambda line: print(line, flush=True))
    return 0
