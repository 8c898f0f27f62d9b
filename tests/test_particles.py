"""Generated level-1 cubes become whole particles at random with their mean kept (`sampling.particles`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nbgan_app.config import Config, DataConfig, SampleConfig, TransformConfig
from nbgan_app.errors import InputError
from nbgan_app.sampling.particles import level_counts, patch_counts
from nbgan_app.transforms import backward, forward

CONFIG = Config(data=DataConfig(), transform=TransformConfig(scale=1.0))


def _values(shape, seed=0):
    rng = np.random.default_rng(seed)
    return forward(rng.gamma(0.5, 3.0, shape), CONFIG.transform)


def test_whole_particles_are_a_neighbouring_whole_number_with_the_mean_kept():
    values = _values((16, 16, 16))
    expected = backward(values, CONFIG.transform)
    counts = patch_counts(values, CONFIG, 1, seed=3, cube=0, index=(1, 2, 0))
    assert counts.dtype == np.float32 and np.array_equal(counts, np.round(counts))
    assert np.all(counts >= np.floor(expected)) and np.all(counts <= np.floor(expected) + 1)
    # the rounding adds variance frac (1 - frac) per voxel and no bias: its total is within 4 sigma
    frac = expected - np.floor(expected)
    assert abs(counts.sum() - expected.sum()) < 4 * np.sqrt(np.sum(frac * (1 - frac)))
    # keyed by (seed, level, cube, patch index) alone
    np.testing.assert_array_equal(counts, patch_counts(values, CONFIG, 1, seed=3, cube=0, index=(1, 2, 0)))
    for other in (dict(seed=4, cube=0, index=(1, 2, 0)), dict(seed=3, cube=1, index=(1, 2, 0)),
                  dict(seed=3, cube=0, index=(1, 2, 1))):
        assert not np.array_equal(counts, patch_counts(values, CONFIG, 1, **other))


def test_coarser_levels_and_expected_counts_keep_their_fractions():
    values = _values((8, 8, 8))
    expected = backward(values, CONFIG.transform)
    np.testing.assert_array_equal(patch_counts(values, CONFIG, 2, 0, 0, (0, 0, 0)), expected)
    fractions = dataclasses.replace(CONFIG, sample=SampleConfig(counts="expected"))
    np.testing.assert_array_equal(patch_counts(values, fractions, 1, 0, 0, (0, 0, 0)), expected)
    np.testing.assert_array_equal(level_counts(values[None], fractions, 1, 4, 0), expected[None])


def test_a_patch_of_whole_particles_keeps_them():
    """A generator that rounds itself (models.whole) comes back within round-off of whole numbers:
    those are taken as they are, not rounded up at random from a hair below."""
    whole = np.random.default_rng(2).poisson(3.0, (16, 16, 16)).astype(np.float64)
    values = forward(whole, CONFIG.transform).astype(np.float32)
    assert not np.array_equal(backward(values, CONFIG.transform), whole)  # float32 round-off
    for seed in range(3):
        np.testing.assert_array_equal(patch_counts(values, CONFIG, 1, seed, 0, (0, 0, 0)), whole)


def test_a_level_in_memory_is_rounded_patch_by_patch_as_a_file_receives_it():
    values = _values((2, 8, 8, 8))
    counts = level_counts(values, CONFIG, 1, patch=4, seed=9)
    patch = patch_counts(values[1, 4:, :4, 4:], CONFIG, 1, 9, 1, (1, 0, 1))
    np.testing.assert_array_equal(counts[1, 4:, :4, 4:], patch)
    assert np.array_equal(counts, np.round(counts))


def test_a_config_names_a_wrong_counts_setting(tmp_path):
    from nbgan_app.config import load_config

    from conftest import ROOT

    text = (ROOT / "configs" / "tiny.toml").read_text() + '\n[sample]\ncounts = "integer"\n'
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match="sample.counts"):
        load_config(path)
