"""Checkpoints that restore training exactly: every variable, written then renamed.

A checkpoint is a directory `checkpoints/step-<N>/` in the run directory with
    state.npz        every variable of the GAN (both networks, the seed state
                     of its random draws) and of both optimizers, by position
    generator.keras  the generator alone, architecture and weights, for sampling
                     (the moving average of its weights when training keeps one)
    meta.json        step, time, backend
It is written under a hidden temporary name and renamed when complete, so a
process killed at any moment leaves either the whole checkpoint or none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from nbgan_app.rundir import CHECKPOINTS

_NAME = re.compile(r"^step-(\d+)$")
KEEP = 3


def training_variables(gan) -> list:
    """The variables a checkpoint holds, in a fixed order (deduplicated)."""
    seen, out = set(), []
    for v in list(gan.variables) + list(gan.d_optimizer.variables) + list(gan.g_optimizer.variables):
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as (step, path), oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: Path, gan, step: int, backend: str) -> Path:
    """Write checkpoint `step` atomically and keep the newest KEEP."""
    import keras

    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    values = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(training_variables(gan))}
    np.savez(tmp / "state.npz", **values)
    with gan.sampling_weights() as generator:  # the moving average where one is kept
        generator.save(tmp / "generator.keras")
    (tmp / "meta.json").write_text(json.dumps({"step": step, "time": time.time(), "backend": backend}))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_checkpoint(path: Path, gan) -> None:
    """Assign every saved variable back; the GAN and its optimizers must be built."""
    variables = training_variables(gan)
    with np.load(Path(path) / "state.npz") as saved:
        if len(saved.files) != len(variables):
            raise ValueError(f"checkpoint {path} holds {len(saved.files)} variables, "
                             f"the model has {len(variables)}")
        for i, variable in enumerate(variables):
            variable.assign(saved[f"v{i:05d}"])


def clean_partial(run_dir: Path) -> None:
    """Remove temporary checkpoint directories left by a killed process."""
    root = Path(run_dir) / CHECKPOINTS
    if root.is_dir():
        for p in root.glob(".step-*.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
