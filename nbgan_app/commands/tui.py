"""`nbgan tui`: the terminal dashboard (the same as `nbgan-tui`).

Textual is imported inside `run`, so nbgan_app itself never imports it.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tui", help="terminal dashboard: start, watch and stop training runs, chained sampling",
        description="Open the terminal dashboard over the run directories under --runs.",
    )
    parser.add_argument("--runs", default="checkpoints", help="directory holding run directories (default: checkpoints)")
    parser.add_argument("--configs", default=None, help="directory of TOML configs for the new-run form (default: configs)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tui.app import create_app

    create_app(args.runs, args.configs).run()
    return 0
