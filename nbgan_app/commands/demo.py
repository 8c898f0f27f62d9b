"""`nbgan demo`: the main job end to end on the embedded default config."""

from __future__ import annotations

from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="simulate the demo data, train M3/M2/M1, sample, score (about 15 min on 2 cores)",
        description="The main job end to end, headless: simulate the demo suite (or reuse it), train the "
                    "three scales briefly, sample full cubes through the chain, score them against held-out "
                    "cubes with the real-vs-real floor, write plots and report.md. A second invocation "
                    "reuses every finished stage.")
    parser.add_argument("--config", type=Path, default=DEFAULT, help="config (default: configs/demo.toml)")
    parser.add_argument("--tui", action="store_true", help="run the demo in the background and watch it "
                                                           "in the dashboard")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nbgan_app.config import load_config

    config = load_config(args.config)
    if args.tui:
        return _with_dashboard(args, config)
    from nbgan_app.demo import run_demo

    run_demo(config)
    return 0


def _with_dashboard(args, config) -> int:
    """Start the headless demo as its own process (it survives the dashboard) and open the dashboard."""
    import subprocess
    import sys

    from nbgan_app.outputs import ensure_writable_dir

    out = ensure_writable_dir(config.resolve(config.demo.out))
    log = open(out / "demo.log", "a")
    subprocess.Popen([sys.executable, "-m", "nbgan_app", "demo", "--config", str(args.config)],
                     stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    from nbgan_app.cli import main as nbgan

    return nbgan(["tui", "--runs", str(out)])
