"""`nbgan train`: train one scale into a run directory; the same command resumes."""

from __future__ import annotations

import argparse
from pathlib import Path

from nbgan_app import scales


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one scale (3, 2, 1 or uni) into a run directory; rerun to resume",
        description="Train one scale's WGAN-GP. Rerunning the same command resumes exactly from the newest "
                    "checkpoint. SIGTERM or Ctrl-C stops gracefully after a checkpoint. The backend comes from "
                    "KERAS_BACKEND (tensorflow by default).",
    )
    parser.add_argument("--config", required=True, type=Path, help="TOML config, e.g. configs/demo.toml")
    parser.add_argument("--scale", required=True, choices=scales.NAMES, help="which model to train")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="run directory; its parent must exist (default: checkpoints/<config>-<scale>)")
    parser.add_argument("--steps", type=int, default=None, help="train to this many generator steps "
                        "(default: train.steps of the config)")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over all local devices (JAX: keras.distribution; TensorFlow: "
                             "tf.distribute.MirroredStrategy), or over the processes named by NBGAN_COORDINATOR, "
                             "NBGAN_NUM_PROCESSES and NBGAN_PROCESS_ID, Slurm's srun or TF_CONFIG "
                             "(docs/cluster.md)")
    add_device_flag(parser, "train on this device, recorded in the run directory's device.json")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def add_device_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """`--device` of `nbgan train` and `nbgan sample`, read by `devices.use_device`."""
    parser.add_argument("--device", metavar="DEV",
                        help=f"{what}: gpu:N (N as in nvidia-smi) or cpu; sets CUDA_VISIBLE_DEVICES before the "
                             "backend starts (default: the backend's own placement)")


def run(args: argparse.Namespace) -> int:
    from nbgan_app.config import load_config
    from nbgan_app.errors import InputError
    from nbgan_app.training import train

    record = None
    if args.device is not None:  # first: CUDA reads its environment once, when the backend starts
        from nbgan_app import devices

        choice, snapshot = devices.use_device(args.device)

        def record(run_dir: Path) -> None:
            devices.record_device(run_dir, choice, snapshot)

    config = load_config(args.config)
    if args.steps is not None and args.steps <= 0:
        raise InputError(f"--steps: expected > 0. Received: {args.steps}")
    run_dir = args.run_dir or Path(config.root) / "checkpoints" / f"{Path(args.config).stem}-{args.scale}"
    # the default place is a layout nbgan owns (checkpoints/ is made if missing); a --run-dir's parent
    # must exist, so that a typo in it is refused instead of making directories
    state = train(config, args.scale, run_dir, steps=args.steps, progress=False if args.quiet else None,
                  distribute=args.distribute, parents=args.run_dir is None, on_run_dir=record)
    if state.get("process"):
        return 0  # one of several processes: process 0 speaks for the run
    if state["step"] == state["start"] >= state["total"]:
        budget = f"--steps {args.steps}" if args.steps is not None else f"train.steps {state['total']}"
        print(f"run {run_dir} is already at step {state['step']} >= {budget}; nothing to train")
    else:
        print(f"{run_dir}: {state['state']} at step {state['step']}")
    return 0
