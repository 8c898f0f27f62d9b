"""`nbgan evaluate`: the evaluation study of the thesis, written as report.md plus figures."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from nbgan_app.errors import InputError

HELP = "the evaluation study: multi-scale chain vs uni-scale, architectures, baselines, conditional up-scaling"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help=HELP,
        description=HELP + ". Trains every model on an equal budget (or reuses those in OUT/runs), scores "
                    "each method against held-out cubes with the real-vs-real floor, and writes report.md, "
                    "results.json and PNG figures into OUT.")
    parser.add_argument("--config", required=True, type=Path, help="run config, e.g. configs/demo.toml")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--study", type=Path, default=None,
                        help="study settings TOML with a [study] table (default: the values of configs/study.toml)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="wall-clock training budget per model in minutes (overrides study.minutes_per_model)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="step budget per model (overrides study.max_steps)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def settings(args):
    """The study settings with the command-line overrides applied (InputError for bad values)."""
    from nbgan_app.study.settings import load_study, validate_study

    study = load_study(args.study)
    if args.budget_minutes is not None:
        if not args.budget_minutes > 0:
            raise InputError(f"--budget-minutes: expected > 0. Received: {args.budget_minutes}")
        study = dataclasses.replace(study, minutes_per_model=args.budget_minutes)
    if args.max_steps is not None:
        if args.max_steps <= 0:
            raise InputError(f"--max-steps: expected > 0. Received: {args.max_steps}")
        study = dataclasses.replace(study, max_steps=args.max_steps)
    return validate_study(study)


def command_line(args) -> str:
    """The invocation, rebuilt from the parsed flags (for the report)."""
    words = ["nbgan evaluate", f"--config {args.config}", f"--out {args.out}"]
    for flag, value in (("--study", args.study), ("--budget-minutes", args.budget_minutes),
                        ("--max-steps", args.max_steps)):
        if value is not None:
            words.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(words)


def run(args) -> int:
    from nbgan_app.config import load_config
    from nbgan_app.outputs import check_output_dir, check_output_file, ensure_writable_dir
    from nbgan_app.plots import require_matplotlib
    from nbgan_app.study.report import write_report
    from nbgan_app.study.study import run_study

    config = load_config(args.config)
    study = settings(args)
    require_matplotlib()
    check_output_dir(args.out)  # before hours of training: a typo in --out fails now
    check_output_file(args.out / "report.md", args.overwrite, parents=True)
    out = ensure_writable_dir(args.out)

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    results = run_study(config, study, out, progress=False if args.quiet else None, log=log)
    results["config"] = str(args.config)
    results["command"] = command_line(args)
    path = write_report(results, out, overwrite=args.overwrite)
    print(f"wrote {path} ({results['wall_seconds'] / 60:.1f} min)")
    return 0
