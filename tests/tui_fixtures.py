"""Fixture run directories for the dashboard tests, written with the run-directory helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from nbgan_app import best, checkpoints, rundir
from nbgan_app.config import load_config, to_dict
from nbgan_app.cubes import write_cube

ROOT = Path(__file__).resolve().parents[1]


def tiny_table(data_dir: str | None = None, held_out: int = 1) -> dict:
    """configs/tiny.toml as config.json holds it; with `data_dir`, its data is that cube directory."""
    table = to_dict(load_config(ROOT / "configs" / "tiny.toml"))
    if data_dir is not None:
        table["data"] = {"dir": data_dir, "box_size": 64.0, "held_out": held_out}
    return table


def stats(scale: float = 1.0) -> dict:
    """A statistics block in the `stats --json` layout."""
    k = np.geomspace(0.1, 3.0, 8)
    edges = np.linspace(0.0, 3.0, 9)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return {"box_size": 64.0, "n_cubes": 2,
            "psd": {"k": k.tolist(), "mean": (100 * k ** -1.5 * scale).tolist(), "std": [1.0] * 8},
            "mass_hist": {"edges": edges.tolist(), "mean": (1000 * np.exp(-centres) * scale).tolist(), "std": [1.0] * 8},
            "peak_hist": {"edges": edges.tolist(), "mean": (50 * np.exp(-2 * centres) * scale).tolist(), "std": [1.0] * 8}}


def make_run(root: Path, name: str, scale: str = "3", state: str = "stopped", steps: int = 5,
             pid: int | None = None, config_path: str = "/nowhere/configs/tiny.toml", argv: list | None = None,
             data_dir: str | None = None) -> Path:
    """A run directory as `nbgan train` leaves it: config.json, state.json, metrics.jsonl."""
    run = Path(root) / name
    run.mkdir(parents=True)
    rundir.write_json_atomic(run / rundir.CONFIG, {
        "config": tiny_table(data_dir),
        "run": {"scale": scale, "backend": "tensorflow", "config_path": config_path, "created": 0.0,
                "argv": argv or ["nbgan", "train", "--config", config_path, "--scale", scale]},
    })
    for i in range(steps):
        rundir.append_metrics(run, metric(i))
    rundir.write_json_atomic(run / rundir.STATE, {"state": state, "step": max(steps - 1, 0), "pid": pid,
                                                   "error": None, "updated": 0.0})
    return run


def add_best(run: Path, step: int, error: float, ratio: float | None = None) -> Path:
    """best/step-<step>/meta.json as `best.keep_if_best` writes it (`ratio` None: a best kept before runs
    recorded mean counts, which lacks the key); no generator.keras, which reading the best never opens."""
    directory = run / best.BEST / checkpoints.step_name(step)
    directory.mkdir(parents=True)
    meta = {"step": step, "monitor_error": error, "time": 0.0, "eval_samples": 8}
    if ratio is not None:
        meta["mean_count_ratio"] = ratio
    write_json(directory / checkpoints.META_FILE, meta)
    return directory


def metric(step: int) -> dict:
    return {"step": step, "time": 100.0 + 2.0 * step, "critic_loss": -1.0 - step, "generator_loss": 0.5 * step,
            "gradient_penalty": 0.1, "wasserstein": 1.0 + step}


def add_samples(run: Path, data_dir: Path, side: int = 16, level: int = 4) -> None:
    """samples/latest.h5 (2 cubes of `level`^3, as an M3 evaluation writes), samples/latest_stats.json,
    and one real cube of `side`^3 in `data_dir`."""
    rng = np.random.default_rng(0)
    (run / rundir.SAMPLES).mkdir(exist_ok=True)
    write_cube(run / rundir.SAMPLES / "latest.h5", rng.poisson(3.0, (2, level, level, level)), 64.0)
    data_dir.mkdir(exist_ok=True)
    write_cube(data_dir / "cube_000.h5", rng.poisson(3.0, (side, side, side)), 64.0)
    rundir.write_json_atomic(run / rundir.SAMPLES / "latest_stats.json",
                             {"step": 4, "real": stats(), "fake": stats(1.5)})


def sleeper(tmp_path: Path) -> subprocess.Popen:
    """A stand-in trainer: sleeps until SIGTERM, then writes `got-sigterm` and exits 0."""
    marker = tmp_path / "got-sigterm"
    code = ("import signal, sys, time, pathlib\n"
            f"def stop(*_):\n    pathlib.Path({str(marker)!r}).write_text('yes'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    process.stdout.readline()  # the handler is installed
    return process


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload))
