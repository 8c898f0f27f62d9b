"""The `nbgan` command line: one entry point, one module per subcommand.

Each module `nbgan_app.commands.<name>` (`-` in a name as `_`) provides `add_parser(subparsers)`,
which registers the subcommand and sets `run` as its handler; `run(args)`
returns the exit code. Command modules import heavy libraries (Keras, jax)
inside `run`, so `nbgan --help` stays fast.

Every refusal is one line on stderr, `nbgan <command>: error: ...`, and exit
code 2: an `InputError` from a command, and argparse's own errors (printed
without the usage block). The backends' start-up log stays off stderr
(`nbgan_app.quiet`), so that line is the only one.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nbgan_app.errors import InputError
from nbgan_app.quiet import backend_imports

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
    "latent-scale",
    "tui",
    "demo",
    "bench",
)


class Parser(argparse.ArgumentParser):
    """argparse with the one-line errors of every other bad input: no usage block before them."""

    def error(self, message: str):
        message = " ".join(message.split())
        if "required" in message:
            message += f"; see {self.prog} --help"
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nbgan",
        description="Multi-scale WGAN-GP emulator of N-body density cubes.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module_name = f"nbgan_app.commands.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a subcommand not built yet
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's and XLA's C++ log (CUDA probing, oneDNN notices) is not for users; the lines its
    # libraries print while loading ignore this, and backend_imports() keeps them off stderr.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with backend_imports():
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
