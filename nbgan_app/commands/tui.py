"""`nbgan tui`: the terminal dashboard (the same program as `nbgan-tui`).

The library never imports the dashboard: this command replaces the process with
`python -m tui.app`, so `nbgan tui` and `nbgan-tui` are one program.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nbgan_app.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tui", help="terminal dashboard: start, watch and stop training runs, chained sampling",
        description="Open the terminal dashboard over the run directories under --runs.",
    )
    parser.add_argument("--runs", default="checkpoints", help="directory holding run directories (default: checkpoints)")
    parser.add_argument("--configs", default=None, help="directory of TOML configs for the new-run form (default: configs)")
    parser.set_defaults(func=run)


def check_dir(path: str | Path, flag: str) -> Path:
    """`path` if it is a directory; InputError naming `flag` and the path otherwise (a dashboard over
    nothing would open empty, without a word)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{flag} {path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{flag} {path}: not a directory")
    return path


def run(args) -> int:
    check_dir(args.runs, "--runs")
    if args.configs:
        check_dir(args.configs, "--configs")
    argv = [sys.executable, "-m", "tui.app", "--runs", str(args.runs)]
    if args.configs:
        argv += ["--configs", str(args.configs)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached
