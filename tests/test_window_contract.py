"""Training contexts equal sampling contexts, bit for bit, through the real sampler.

The sampler is run end to end (`PatchSampler`, its stores, its coarse windows and
`split_window`) with a generator that looks each patch up by its latent, so the
level it builds is a known real cube. Every context it handed the generator must
then equal the context training cuts for that patch (`training_data.cut_window`,
coarse windows as block means, `split_window`) with the same patch index.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nbgan_app.pyramid import block_mean
from nbgan_app.sampling import noise
from nbgan_app.sampling.levels import ArrayTarget
from nbgan_app.sampling.sampler import PatchSampler
from nbgan_app.training_data import cut_window
from nbgan_app.windows import split_window


class _LookupGenerator:
    """Returns the real cube's patch for each input row (identified by its latent); records contexts."""

    def __init__(self, cubes, patch, seed, level):
        self.cubes, self.patch = cubes, patch
        grid = cubes.shape[1] // patch
        self.keys = {}
        for cube in range(len(cubes)):
            for index in itertools.product(range(grid), repeat=cubes.ndim - 1):
                latent = noise.patch_latent(seed, level, cube, index, patch)
                self.keys[latent.tobytes()] = (cube, index)
        self.contexts = {}

    def __call__(self, x):
        out = []
        for row in x:
            cube, index = self.keys[np.ascontiguousarray(row[..., :1]).tobytes()]
            self.contexts[(cube, index)] = row[..., 1:].copy()
            region = tuple(slice(i * self.patch, (i + 1) * self.patch) for i in index)
            out.append(self.cubes[cube][region][..., None])
        return np.stack(out)


@pytest.mark.backends
@pytest.mark.parametrize("ndim,side,patch,factor,order", [
    (3, 16, 4, 2, "wavefront"), (3, 16, 8, 4, "raster"), (2, 32, 8, 2, "wavefront"), (3, 8, 4, None, "raster")])
def test_every_training_context_equals_the_sampler_context(ndim, side, patch, factor, order):
    rng = np.random.default_rng(3)
    cubes = rng.gamma(0.5, 1.0, size=(2,) + (side,) * ndim).astype(np.float32)  # a transformed level
    coarse = block_mean(cubes, factor, ndim) if factor else None
    seed, level = 5, 1
    generator = _LookupGenerator(cubes, patch, seed, level)
    target = ArrayTarget(len(cubes), side, patch, ndim)
    PatchSampler(generator, order=order, max_batch=7, seed=seed, level=level, factor=factor).sample(
        target, len(cubes), coarse)
    np.testing.assert_array_equal(target.values, cubes)  # the lookup really rebuilt the cubes

    grid = side // patch
    assert len(generator.contexts) == len(cubes) * grid**ndim
    for (cube, index), sampled in generator.contexts.items():
        window = cut_window(cubes[cube], index, patch, (0,) * ndim)[None, ..., None]
        coarse_window = block_mean(window[..., 0], factor, ndim)[..., None] if factor else None
        context, target_patch = split_window(window, coarse_window)
        np.testing.assert_array_equal(np.asarray(context)[0], sampled, err_msg=f"cube {cube} patch {index}")
        region = tuple(slice(i * patch, (i + 1) * patch) for i in index)
        np.testing.assert_array_equal(np.asarray(target_patch)[0, ..., 0], cubes[cube][region])
