"""`nbgan tui`: the terminal dashboard (the same program as `nbgan-tui`).

The library never imports the dashboard: this command replaces the process with
`python -m tui.app`, so `nbgan tui` and `nbgan-tui` are one program.
"""

from __future__ import annotations

import os
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tui", help="terminal dashboard: start, watch and stop training runs, chained sampling",
        description="Open the terminal dashboard over the run directories under --runs.",
    )
    parser.add_argument("--runs", default="checkpoints", help="directory holding run directories (default: checkpoints)")
    parser.add_argument("--configs", default=None, help="directory of TOML configs for the new-run form (default: configs)")
    parser.set_defaults(func=run)


def run(args) -> int:
    argv = [sys.executable, "-m", "tui.app", "--runs", str(args.runs)]
    if args.configs:
        argv += ["--configs", str(args.configs)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached
