import itertools

import numpy as np
import pytest

from nbgan_app.pyramid import block_mean
from nbgan_app.training_data import TrainingBatches, cut_window, transform_cube
from nbgan_app.windows import extract_window, neighbour_offsets, upsample


def test_block_mean_and_upsample_2d_3d():
    """The models' up-sampling (windows, channels last) is a right inverse of the pyramid's block mean."""
    from keras import ops

    for ndim in (2, 3):
        x = np.arange(4**ndim, dtype=np.float32).reshape((4,) * ndim)
        down = block_mean(x, 2, ndim)
        assert down.shape == (2,) * ndim
        assert np.isclose(down.mean(), x.mean())
        assert np.isclose(down[(0,) * ndim], x[(slice(0, 2),) * ndim].mean())
        up = ops.convert_to_numpy(upsample(down[None, ..., None], 2))[0, ..., 0]
        assert up.shape == x.shape
        assert np.array_equal(block_mean(up, 2, ndim), down)


def test_block_means_of_a_batch_nest():
    """A coarse level made from the finer level equals one made from the finest: the chain's levels agree."""
    cubes = np.random.default_rng(0).random((2, 16, 16, 16)).astype(np.float32)
    middle = block_mean(cubes, 2)
    assert middle.shape == (2, 8, 8, 8)
    np.testing.assert_allclose(block_mean(middle, 4), block_mean(cubes, 8), rtol=1e-6)


def test_neighbour_offsets():
    assert len(neighbour_offsets(3)) == 7 and len(neighbour_offsets(2)) == 3
    assert (0, 0, 0) not in neighbour_offsets(3)


def test_extract_window_zero_pads_low_faces():
    cube = np.ones((8, 8, 8), np.float32)
    w = extract_window(cube, (-2, 0, 2), 4)
    assert w[:2].sum() == 0 and w[2:].min() == 1


@pytest.mark.parametrize("ndim", [2, 3])
def test_training_window_equals_sampler_window_on_transformed_cube(ndim):
    """Training windows are exactly what the sampler cuts from a (shifted, rotated) cube."""
    rng = np.random.default_rng(1)
    cube = rng.random((8,) * ndim).astype(np.float32)
    for perm in itertools.permutations(range(ndim)):
        for flips in itertools.product((False, True), repeat=ndim):
            shift = tuple(int(s) for s in rng.integers(8, size=ndim))
            full = transform_cube(cube, shift, perm, flips)
            for index in itertools.product(range(4), repeat=ndim):
                corner = tuple((i - 1) * 2 for i in index)
                expected = extract_window(full, corner, 4)
                assert np.array_equal(cut_window(cube, index, 2, shift, perm, flips), expected)


def test_symmetries_are_all_distinct():
    cube = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    seen = {transform_cube(cube, (0, 0, 0), perm, flips).tobytes()
            for perm in itertools.permutations(range(3))
            for flips in itertools.product((False, True), repeat=3)}
    assert len(seen) == 48


def test_batches_deterministic_and_shaped():
    levels = np.random.default_rng(2).random((3, 16, 16, 16)).astype(np.float32)
    data = TrainingBatches(levels, batch_size=2, num_critic_steps=3, patch=4, factor=2, seed=5, steps=10)
    windows, coarse = data[4]
    assert windows.shape == (2, 3, 8, 8, 8, 1) and coarse.shape == (2, 3, 4, 4, 4, 1)
    assert np.allclose(coarse[..., 0], block_mean(windows[..., 0], 2))
    again = TrainingBatches(levels, 2, 3, patch=4, factor=2, seed=5, steps=6, first_step=4)
    assert np.array_equal(again[0][0], windows)  # batch = f(seed, global step): exact resume
    assert not np.array_equal(data[5][0], windows)
    whole = TrainingBatches(levels, 2, 3, seed=5, steps=1)[0]
    assert whole.shape == (2, 3, 16, 16, 16, 1)
    # shifts and symmetries preserve the multiset of values of a whole cube
    assert any(np.allclose(np.sort(whole[0, 0].ravel()), np.sort(lv.ravel())) for lv in levels)


def test_low_face_windows_occur_with_zero_halves():
    levels = np.ones((1, 8, 8, 8), np.float32)
    data = TrainingBatches(levels, batch_size=16, num_critic_steps=2, patch=4, seed=0, steps=1)
    windows = data[0][..., 0].reshape(-1, 8, 8, 8)
    target_ok = windows[:, 4:, 4:, 4:].min() == 1
    zero_halves = (windows.reshape(len(windows), -1).min(axis=1) == 0).sum()
    assert target_ok and 0 < zero_halves < len(windows)


def test_a_count_space_pyramid_keeps_every_particle_and_training_coarsens_windows_the_same_way():
    """pyramid.mean = "counts": a coarse voxel is the transform of its block's mean count, so every
    level holds the particles of the cube; training's coarse windows are made by the same rule."""
    import dataclasses

    from nbgan_app.config import load_config
    from nbgan_app.pyramid import coarsen, level_of
    from nbgan_app.transforms import backward

    from conftest import ROOT

    config = load_config(ROOT / "configs" / "tiny.toml")
    config = dataclasses.replace(config, pyramid=dataclasses.replace(config.pyramid, mean="counts"))
    counts = np.random.default_rng(3).poisson(np.random.default_rng(4).gamma(0.3, 4.0, (2, 16, 16, 16)))
    fine, coarse = level_of(config, counts, 16), level_of(config, counts, 4)
    np.testing.assert_allclose(backward(coarse, config.transform), block_mean(counts.astype(np.float64), 4),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(coarsen(fine, 4, 3, config.transform), coarse, rtol=1e-5, atol=1e-6)
    # the log-space pyramid loses mass: its coarse cubes hold fewer particles than the cube
    plain = level_of(load_config(ROOT / "configs" / "tiny.toml"), counts, 4)
    assert backward(plain, config.transform).sum() < 0.9 * counts.sum() / 64
    data = TrainingBatches(fine, batch_size=2, num_critic_steps=1, patch=4, factor=2, seed=5, steps=2,
                           count_transform=config.transform)
    windows, coarse_windows = data[1]
    np.testing.assert_allclose(backward(coarse_windows[..., 0], config.transform),
                               block_mean(backward(windows[..., 0], config.transform).astype(np.float64), 2),
                               rtol=1e-5, atol=1e-5)
