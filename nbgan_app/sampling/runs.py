"""Loading trained runs for sampling: the resolved config, the scale, the latest generator.

A run directory (nbgan_app.rundir) holds config.json = {"config": resolved
config, "run": {"scale", "backend", ...}} and complete checkpoints
`checkpoints/step-<N>/` with `generator.keras` (nbgan_app.checkpoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.run_setup import read_run
from nbgan_app.sampling.chain import RunInfo
from nbgan_app.sampling.sampler import to_numpy


def load_run(path: str | Path) -> RunInfo:
    """The scale and config of the run at `path`; InputError if it is not a run directory."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"run {path} does not exist")
    scale, config = read_run(path)
    return RunInfo(path, scale, config)


def checkpoint_of(run: RunInfo) -> tuple[int, Path]:
    """(step, directory) of the run's latest complete checkpoint; InputError if there is none."""
    from nbgan_app.checkpoints import latest_checkpoint

    found = latest_checkpoint(run.path)
    if found is None or not (found[1] / "generator.keras").exists():
        raise InputError(f"run {run.path} has no checkpoint with a generator (train it first)")
    return found


def keras_generator(model) -> Callable[[np.ndarray], np.ndarray]:
    """A Keras generator as `levels.make_level` calls it: one inference call per batch, float32 NumPy out.

    The one wrapper for trained (`load_generator`) and in-training
    (`evaluation.Evaluator`) generators alike, called with training=False.
    """
    def generate(x: np.ndarray) -> np.ndarray:
        return to_numpy(model(x, training=False))

    return generate


def load_generator(run: RunInfo) -> Callable[[np.ndarray], np.ndarray]:
    """The generator of the run's latest checkpoint, as a sampler callable."""
    import keras

    import nbgan_app.models.factory  # noqa: F401  (registers the custom layers the file may name)

    _, directory = checkpoint_of(run)
    model = keras.saving.load_model(directory / "generator.keras", compile=False)
    return keras_generator(model)
