"""`nbgan demo`: the main job end to end on the embedded default config."""

from __future__ import annotations

from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="sample the shipped demo chain and score it against fresh PM boxes (a few minutes); "
                     "--train retrains it first",
        description="The main job end to end, headless. By default: simulate fresh PM test boxes (cached), "
                    "sample cubes through the shipped preset chain M3 -> M2 -> M1 (`nbgan presets`), up-scale "
                    "the test boxes' coarse levels, and score everything against the test boxes beside the "
                    "real-vs-real floor and a lognormal mock; write scores.json, statistics.png and report.md "
                    "into <demo.out>/preset. With --train: simulate the training suite, retrain the chain "
                    "from scratch (an interrupted run resumes), then score it the same way into <demo.out>.")
    parser.add_argument("--config", type=Path, default=DEFAULT, help="config (default: configs/demo.toml)")
    parser.add_argument("--train", action="store_true", help="retrain the chain from scratch first")
    parser.add_argument("--n", type=int, help="test boxes and generated cubes per row (default: the config's "
                                              "demo.samples, 32 in configs/demo.toml)")
    parser.add_argument("--tui", action="store_true", help="run the demo in the background and watch it "
                                                           "in the dashboard")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nbgan_app.config import load_config

    from nbgan_app.errors import InputError

    config = load_config(args.config)
    args.n = config.demo.samples if args.n is None else args.n
    if args.n < 4:
        raise InputError(f"--n (default demo.samples): the floor needs at least 4 test boxes. Received: {args.n}")
    if args.tui:
        return _with_dashboard(args, config)
    from nbgan_app.demo import run_demo

    run_demo(config, train=args.train, n=args.n)
    return 0


def _with_dashboard(args, config) -> int:
    """Start the headless demo as its own process (it survives the dashboard) and open the dashboard."""
    import subprocess
    import sys

    from nbgan_app.outputs import ensure_writable_dir

    out = ensure_writable_dir(config.resolve(config.demo.out), parents=True)
    log = open(out / "demo.log", "a")
    command = [sys.executable, "-m", "nbgan_app", "demo", "--config", str(args.config), "--n", str(args.n)]
    subprocess.Popen(command + (["--train"] if args.train else []),
                     stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    from nbgan_app.cli import main as nbgan

    return nbgan(["tui", "--runs", str(out)])
