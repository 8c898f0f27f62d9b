"""Training contexts equal sampling contexts, bit for bit, through the real sampler.

The sampler is run end to end (`PatchSampler`, its stores, its coarse windows and
`split_window`) with a generator that looks each patch up by its latent, so the
level it builds is a known real cube. Every context it handed the generator must
then equal the context training cuts for that patch (`training_data.cut_window`,
coarse windows as block means, `split_window`) with the same patch index. With an
up-scaler's lookahead the coarse windows reach one patch past the target's high faces.
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
from nbgan_app.windows import ahead_offsets, coarse_span, critic_input, split_window


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
@pytest.mark.parametrize("ndim,side,patch,factor,order,lookahead", [
    (3, 16, 4, 2, "wavefront", False), (3, 16, 8, 4, "raster", False), (2, 32, 8, 2, "wavefront", False),
    (3, 8, 4, None, "raster", False), (3, 16, 4, 2, "wavefront", True), (2, 32, 8, 4, "raster", True)])
def test_every_training_context_equals_the_sampler_context(ndim, side, patch, factor, order, lookahead):
    rng = np.random.default_rng(3)
    cubes = rng.gamma(0.5, 1.0, size=(2,) + (side,) * ndim).astype(np.float32)  # a transformed level
    coarse = block_mean(cubes, factor, ndim) if factor else None
    seed, level = 5, 1
    generator = _LookupGenerator(cubes, patch, seed, level)
    target = ArrayTarget(len(cubes), side, patch, ndim)
    PatchSampler(generator, order=order, max_batch=7, seed=seed, level=level, factor=factor,
                 lookahead=lookahead).sample(target, len(cubes), coarse)
    np.testing.assert_array_equal(target.values, cubes)  # the lookup really rebuilt the cubes

    grid = side // patch
    assert len(generator.contexts) == len(cubes) * grid**ndim
    span = coarse_span(lookahead)
    for (cube, index), sampled in generator.contexts.items():
        cut = cut_window(cubes[cube], index, patch, (0,) * ndim, span=span)[None, ..., None]
        coarse_window = block_mean(cut[..., 0], factor, ndim)[..., None] if factor else None
        window = cut[(slice(None),) + (slice(0, 2 * patch),) * ndim]
        context, target_patch = split_window(window, coarse_window, lookahead)
        np.testing.assert_array_equal(np.asarray(context)[0], sampled, err_msg=f"cube {cube} patch {index}")
        region = tuple(slice(i * patch, (i + 1) * patch) for i in index)
        np.testing.assert_array_equal(np.asarray(target_patch)[0, ..., 0], cubes[cube][region])


@pytest.mark.parametrize("ndim", [2, 3])
def test_the_lookahead_channels_are_the_coarse_patches_past_the_high_faces(ndim):
    """Each lookahead channel is its coarse patch up-sampled and mirrored across the shared faces; zeros
    past the level's high faces. The coarse target stays the last channel (the up-scalers read it there)."""
    side, patch, factor = 16, 4, 2
    small = patch // factor
    fine = np.random.default_rng(4).gamma(0.5, 1.0, size=(side,) * ndim).astype(np.float32)
    coarse = block_mean(fine[None], factor, ndim)[0]
    grid = side // patch
    for index in [(1,) * ndim, (grid - 1,) + (1,) * (ndim - 1)]:
        cut = cut_window(fine, index, patch, (0,) * ndim, span=3)[None, ..., None]
        window = cut[(slice(None),) + (slice(0, 2 * patch),) * ndim]
        context = np.asarray(split_window(window, block_mean(cut[..., 0], factor, ndim)[..., None], True)[0])[0]
        assert context.shape[-1] == 2 * (2**ndim - 1) + 1
        for channel, offset in enumerate(ahead_offsets(ndim), start=2**ndim - 1):
            where = [i + o for i, o in zip(index, offset)]
            if max(where) >= grid:
                expected = np.zeros((patch,) * ndim, np.float32)
            else:
                expected = coarse[tuple(slice(w * small, (w + 1) * small) for w in where)]
                expected = np.flip(expected, [axis for axis, o in enumerate(offset) if o > 0])
                for axis in range(ndim):
                    expected = np.repeat(expected, factor, axis=axis)
            np.testing.assert_array_equal(context[..., channel], expected, err_msg=f"{index} {offset}")
        own = coarse[tuple(slice(i * small, (i + 1) * small) for i in index)]
        for axis in range(ndim):
            own = np.repeat(own, factor, axis=axis)
        np.testing.assert_array_equal(context[..., -1], own)


def test_the_critic_sees_the_lookahead_in_the_target_octant_and_the_rest_as_without():
    ndim, side, patch, factor = 3, 16, 4, 2
    fine = np.random.default_rng(5).gamma(0.5, 1.0, size=(side,) * ndim).astype(np.float32)
    cut = cut_window(fine, (1, 2, 1), patch, (0,) * ndim, span=3)[None, ..., None]
    window = cut[(slice(None),) + (slice(0, 2 * patch),) * ndim]
    longer = block_mean(cut[..., 0], factor, ndim)[..., None]
    seen = np.asarray(critic_input(window, longer, lookahead=True))[0]
    without = np.asarray(critic_input(window, block_mean(window[..., 0], factor, ndim)[..., None]))[0]
    ahead = np.asarray(split_window(window, longer, True)[0])[0][..., 2**ndim - 1:-1]
    assert seen.shape == (2 * patch,) * ndim + (3 + 2**ndim - 1,)
    np.testing.assert_array_equal(seen[..., :3], without)
    target = (slice(patch, None),) * ndim
    np.testing.assert_array_equal(seen[target][..., 3:], ahead)
    outside = seen[..., 3:].copy()
    outside[target] = 0
    assert not outside.any() and ahead.any()
