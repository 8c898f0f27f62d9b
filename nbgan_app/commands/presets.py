"""`nbgan presets`: the trained chains shipped with the repository, with their scores."""

from __future__ import annotations

HELP = "list the shipped trained chains (usable as `sample --chain NAME`) with their scores"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "presets", help=HELP,
        description=HELP + ". Scores are the median over bins of |fake mean / real mean - 1| against "
                    "fresh held-out PM boxes, beside the real-vs-real floor, as recorded in each preset's "
                    "manifest.json.")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nbgan_app.presets import format_presets, list_presets

    print(format_presets(list_presets()))
    return 0
