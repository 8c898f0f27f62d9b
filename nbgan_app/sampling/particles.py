"""A chain's last level as particle counts: what `data` of a sample file holds.

The backward transform gives each voxel's expected count. Voxels of level 1
hold particles, and N-body count cubes are whole numbers: a continuous field
sits between them, and the mass and peak histograms see it (docs/quality.md).
So under `sample.counts = "whole"` (the default) level-1 counts are rounded to
whole particles at random with their mean kept: floor(x) + 1 with probability
x - floor(x). Coarser levels hold block means and keep their fractions, as
does everything under `sample.counts = "expected"` (for fields that are not
particle counts, e.g. cloud-in-cell densities).

The rounding draws depend only on (seed, level, cube, patch index)
(`noise.patch_uniform`), as the latents do, so a file and the same cubes made
in memory agree bit for bit in any order, batch size, resume or worker split.

A generator with `whole_particles` (`models.whole`) already writes whole
particles; its counts come back from the transform within float32 round-off
of whole numbers, and such voxels are taken to those numbers rather than
rounded again.
"""

from __future__ import annotations

import itertools

import numpy as np

from nbgan_app.config import Config
from nbgan_app.sampling import noise
from nbgan_app.sampling.writer import patch_region
from nbgan_app.transforms import backward


def whole(config: Config, level: int) -> bool:
    """Whether a run's cubes at `level` are rounded to whole particles."""
    return config.sample.counts == "whole" and level == 1


def patch_counts(values: np.ndarray, config: Config, level: int, seed: int, cube: int,
                 index: tuple[int, ...]) -> np.ndarray:
    """Counts (float32) of one generated patch, transformed `values`, of cube `cube` at `level`."""
    counts = backward(values, config.transform)
    if not whole(config, level):
        return counts
    nearest = np.rint(counts)
    already = np.isclose(counts, nearest, rtol=1e-5, atol=1e-5)
    rounded = np.floor(counts + noise.patch_uniform(seed, level, cube, index, counts.shape))
    return np.where(already, nearest, rounded).astype(np.float32)


def level_counts(values: np.ndarray, config: Config, level: int, patch: int, seed: int) -> np.ndarray:
    """Counts of a whole level in memory (N, S, ..., S), patch by patch as a file receives them."""
    if not whole(config, level):
        return backward(values, config.transform)
    counts = np.empty(values.shape, np.float32)
    grid = range(values.shape[1] // patch)
    for cube in range(len(values)):
        for index in itertools.product(grid, repeat=values.ndim - 1):
            region = patch_region(cube, index, patch)
            counts[region] = patch_counts(values[region], config, level, seed, cube, index)
    return counts
