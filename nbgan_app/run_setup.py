"""Creating a run directory, or checking that an existing one belongs to this run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nbgan_app import rundir
from nbgan_app.config import Config, to_dict
from nbgan_app.errors import InputError
from nbgan_app.outputs import ensure_writable_dir


def _comparable(table: dict) -> dict:
    """The config without settings a resume may change (the step budget)."""
    table = {k: dict(v) if isinstance(v, dict) else v for k, v in table.items()}
    table.get("train", {}).pop("steps", None)
    return table


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        elif a.get(key) != b.get(key):
            return f"{prefix}{key}"
    return ""


def prepare_run_dir(config: Config, scale: str, run_dir: Path, backend: str) -> Path:
    """Create `run_dir` with config.json, or check an existing run matches (scale, config, backend)."""
    run_dir = ensure_writable_dir(run_dir)
    path = run_dir / rundir.CONFIG
    table = to_dict(config)
    if path.exists():
        saved = rundir.read_json(path)
        if not saved or "run" not in saved or "config" not in saved:
            raise InputError(f"{path} is corrupt; use a new --run-dir")
        run = saved["run"]
        if run.get("scale") != scale:
            raise InputError(f"run {run_dir} trains scale {run.get('scale')}, not --scale {scale}")
        if run.get("backend") != backend:
            raise InputError(f"run {run_dir} was trained on the {run.get('backend')} backend, not {backend} "
                             f"(set KERAS_BACKEND={run.get('backend')})")
        diff = _first_difference(_comparable(saved["config"]), _comparable(table))
        if diff:
            raise InputError(f"run {run_dir} was made with a different config ({diff} differs); use a new --run-dir")
        return run_dir
    rundir.write_json_atomic(path, {
        "config": table,
        "run": {"scale": scale, "backend": backend, "config_path": config.source, "root": config.root,
                "created": time.time(), "argv": sys.argv},
    })
    return run_dir
