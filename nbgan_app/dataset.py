"""The cubes a config names: a directory of cube files, or a cached simulation.

`load_dataset` makes the simulation first when its cache is missing (with
progress shown), so every command that needs data works from a clean clone.
The last `data.held_out` cubes in sorted order are kept for evaluation only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbgan_app.config import Config
from nbgan_app.cubes import list_cube_files, load_cubes
from nbgan_app.errors import InputError


def ensure_simulated(config: Config, progress: bool = True) -> Path:
    """The simulation cache directory of `config`, simulated first where boxes are missing."""
    from nbgan_app.simulate import simulate_suite

    sim = config.data.simulation
    cache = config.resolve(sim.cache)
    simulate_suite(sim, cache, progress=progress)
    return cache


def data_files(config: Config, progress: bool = True) -> list[Path]:
    """The cube files of `config`'s data, in sorted order; InputError naming data.dir when it is
    missing or holds no cube files."""
    if config.data.simulation is not None:
        return list_cube_files([ensure_simulated(config, progress)])
    directory = config.resolve(config.data.dir)
    if not directory.exists():
        raise InputError(f"data.dir: {directory} does not exist (a directory of cube files)")
    try:
        return list_cube_files([directory])
    except InputError as exc:
        raise InputError(f"data.dir: {exc}") from None


def load_dataset(config: Config, progress: bool = True) -> tuple[np.ndarray, float]:
    """All cubes of the config's data as counts (N, G, G, G) float32, and the box size in Mpc/h."""
    files = data_files(config, progress)
    counts, box_size = load_cubes(files, config.data.declared_box_size())
    grid = config.pyramid.sizes[0]
    if counts.shape[1:] != (grid,) * 3:
        raise InputError(f"{files[0].parent}: cubes have shape {counts.shape[1:]}, "
                         f"config pyramid.sizes[0] wants {grid}^3")
    if box_size is None:
        raise InputError("the data's box size is unknown: set data.box_size in the config")
    return counts, box_size


def split_dataset(config: Config, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training cubes, held-out cubes): the last `data.held_out` cubes are held out."""
    held = config.data.held_out
    if held >= len(counts):
        raise InputError(f"data.held_out: {held} leaves no training cube out of the {len(counts)} "
                         f"cubes of the data; lower it or add cubes")
    return counts[: len(counts) - held], counts[len(counts) - held:]
