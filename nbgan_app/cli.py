"""The `nbgan` command line: one entry point, one module per subcommand.

Each module `nbgan_app.commands.<name>` provides `add_parser(subparsers)`,
which registers the subcommand and sets `run` as its handler; `run(args)`
returns the exit code. Command modules import heavy libraries (Keras, jax)
inside `run`, so `nbgan --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nbgan_app.errors import InputError

COMMANDS = (
    "simulate",
    "ingest",
    "stats",
    "compare",
    "train",
    "sample",
    "presets",
    "upscale",
    "evaluate",
    "ablate",
    "tui",
    "demo",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbgan",
        description="Multi-scale WGAN-GP emulator of N-body density cubes.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nbgan_app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nbgan_app.commands.{name}":
                raise
            continue  # a subcommand not built yet
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) is not for users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except InputError as exc:
        print(f"nbgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nbgan {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
