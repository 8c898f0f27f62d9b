"""Up-scaler generators: the residual keeps its condition's block means and the count split its
particles; the interpolated start; the config's refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nbgan_app.models.factory import build_generator

from conftest import ROOT, config_named


def _upsampled(a, factor):
    """(B, s, s, s) -> (B, fs, fs, fs): each value copied into its factor^3 block (`windows.upsample`)."""
    import keras

    from nbgan_app.windows import upsample

    return keras.ops.convert_to_numpy(upsample(np.asarray(a)[..., None], factor))[..., 0]


def _consistent_input(rng, patch, channels, factor):
    """Generator input whose last channel is an up-sampled coarse patch, as split_window builds it."""
    from nbgan_app.pyramid import block_mean

    x = rng.normal(size=(3,) + (patch,) * 3 + (channels,)).astype("float32")
    x[..., -1] = _upsampled(block_mean(x[..., -1], factor), factor)
    return x


@pytest.mark.backends
def test_residual_upscaler_is_consistent_with_its_condition_and_saves(tmp_path):
    """Block means of a residual up-scaler's output equal the coarse patch it was given, at init and
    after its weights move; an untrained one is near the up-sampled condition; it saves and loads."""
    import dataclasses

    import keras

    from nbgan_app.pyramid import block_mean

    config = config_named("tiny")
    config = dataclasses.replace(config, m1=dataclasses.replace(config.m1, upscaler="residual"))
    generator = build_generator(config.m1, "1", config)
    factor = config.factor("1")
    x = _consistent_input(np.random.default_rng(0), config.pyramid.patch, generator.input_shape[-1], factor)
    coarse = block_mean(x[..., -1], factor)
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    np.testing.assert_allclose(block_mean(y, factor), coarse, atol=1e-5)
    assert np.abs(y - x[..., -1]).max() < 0.1  # small-initialised residual
    for variable in generator.trainable_variables:  # a trained generator: large weights everywhere
        variable.assign(np.random.default_rng(1).normal(size=variable.shape).astype("float32"))
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    assert np.abs(y - x[..., -1]).max() > 0.5
    np.testing.assert_allclose(block_mean(y, factor), coarse, atol=1e-4)
    from nbgan_app.models.factory import residual_bound

    assert np.abs(y - x[..., -1]).max() <= 2 * residual_bound(config, config.m1) + 1e-4
    path = tmp_path / "g.keras"
    generator.save(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(path)(x))[..., 0], y,
                               rtol=1e-5, atol=1e-5)


def test_residual_bound_from_the_config_bounds_a_trained_upscaler():
    """`m1.residual_bound` replaces the transform of c as |r|'s bound, and a saved model keeps it."""
    import dataclasses

    import keras

    from nbgan_app.models.factory import residual_bound

    config = config_named("tiny")
    default = dataclasses.replace(config, m1=dataclasses.replace(config.m1, upscaler="residual"))
    bounded = dataclasses.replace(config, m1=dataclasses.replace(default.m1, residual_bound=0.25))
    assert residual_bound(default, default.m1) > 1 and residual_bound(bounded, bounded.m1) == 0.25
    generator = build_generator(bounded.m1, "1", bounded)
    x = _consistent_input(np.random.default_rng(0), config.pyramid.patch, generator.input_shape[-1],
                          config.factor("1"))
    for variable in generator.trainable_variables:
        variable.assign(np.random.default_rng(1).normal(size=variable.shape).astype("float32"))
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    assert 0.2 < np.abs(y - x[..., -1]).max() <= 2 * 0.25 + 1e-5


@pytest.mark.parametrize("section, value, message", [
    ("m1", -1.0, "m1.residual_bound: expected a bound >= 0"),
    ("m2", 2.0, "m2.residual_bound bounds the residual up-scaler's output; m2.upscaler is 'direct'"),
])
def test_a_senseless_residual_bound_is_refused(section, value, message):
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table[section]["residual_bound"] = value
    table[section].setdefault("upscaler", "direct")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_config(table)


def test_residual_upscaler_needs_a_condition():
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["mu"]["upscaler"] = "residual"
    with pytest.raises(InputError, match="mu.upscaler"):
        parse_config(table, ROOT)


@pytest.mark.backends
def test_a_count_split_upscaler_keeps_its_blocks_particles_and_saves(tmp_path):
    """upscaler = "split": the block means of the output's counts equal the coarse voxel's mean count
    at initialisation and after the weights move; an untrained one is the up-sampled condition."""
    import dataclasses

    import keras

    from nbgan_app.pyramid import block_mean
    from nbgan_app.transforms import backward, forward

    config = config_named("tiny")
    config = dataclasses.replace(config, pyramid=dataclasses.replace(config.pyramid, mean="counts"),
                                 m1=dataclasses.replace(config.m1, upscaler="split", residual_bound=4.0))
    generator = build_generator(config.m1, "1", config)
    factor, rng = config.factor("1"), np.random.default_rng(0)
    x = rng.normal(size=(3,) + (config.pyramid.patch,) * 3 + (generator.input_shape[-1],)).astype("float32")
    mean = rng.gamma(0.5, 4.0, size=(3,) + (config.pyramid.patch // factor,) * 3)
    x[..., -1] = _upsampled(forward(mean, config.transform), factor)
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    assert np.abs(y - x[..., -1]).max() < 0.05
    for variable in generator.trainable_variables:
        variable.assign(np.random.default_rng(1).normal(size=variable.shape).astype("float32"))
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    assert np.abs(y - x[..., -1]).max() > 0.2  # particles moved within their blocks
    np.testing.assert_allclose(block_mean(backward(y, config.transform).astype(np.float64), factor), mean,
                               rtol=1e-4, atol=1e-4)
    generator.save(tmp_path / "g.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "g.keras")(x))[..., 0],
                               y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t["m1"].update(upscaler="split"), 'm1.upscaler = "split" conserves counts, so it needs pyramid.mean'),
    (lambda t: t["pyramid"].update(mean="count"), "pyramid.mean: expected one of transformed, counts. Received: 'count'"),
])
def test_a_count_split_needs_a_count_space_pyramid(mutate, message):
    import re

    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    mutate(table)
    with pytest.raises(InputError, match=re.escape(message)):
        parse_config(table)


@pytest.mark.backends
@pytest.mark.parametrize("upscaler", ["residual", "split"])
def test_an_interpolated_condition_starts_the_upscaler_from_a_linear_interpolation_keeping_block_means(
        upscaler, tmp_path):
    """interpolate_condition: an untrained up-scaler gives the condition interpolated linearly between
    coarse-voxel centres (scipy's order-1 zoom, edges held), shifted (residual, transformed space) or
    scaled (split, counts) so that each block keeps its coarse value; trained weights keep the blocks
    too, and the saved model keeps the setting."""
    import dataclasses

    import keras
    from scipy import ndimage

    from nbgan_app.pyramid import block_mean
    from nbgan_app.transforms import backward, forward

    config = config_named("tiny")
    m1 = dataclasses.replace(config.m1, upscaler=upscaler, residual_bound=4.0, interpolate_condition=True)
    pyramid = dataclasses.replace(config.pyramid, mean="counts" if upscaler == "split" else "transformed")
    config = dataclasses.replace(config, pyramid=pyramid, m1=m1)
    generator = build_generator(config.m1, "1", config)
    for variable in generator.trainable_variables:  # h = 0: the start alone
        variable.assign(np.zeros(variable.shape, "float32"))
    factor, rng = config.factor("1"), np.random.default_rng(0)
    x = rng.normal(size=(3,) + (config.pyramid.patch,) * 3 + (generator.input_shape[-1],)).astype("float32")
    mean = rng.gamma(0.5, 4.0, size=(3,) + (config.pyramid.patch // factor,) * 3)
    coarse = forward(mean, config.transform)
    x[..., -1] = _upsampled(coarse, factor)
    field = coarse if upscaler == "residual" else mean
    linear = np.stack([ndimage.zoom(c, factor, order=1, mode="nearest", grid_mode=True) for c in field])
    up = _upsampled(field, factor)
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    if upscaler == "residual":
        expected = linear + up - _upsampled(block_mean(linear, factor), factor)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    else:
        scaled = linear * up / _upsampled(block_mean(linear, factor), factor)
        np.testing.assert_allclose(backward(y, config.transform), scaled, rtol=1e-4, atol=1e-4)
    assert np.abs(y - x[..., -1]).max() > 0.02  # not the copy
    for variable in generator.trainable_variables:
        variable.assign(np.random.default_rng(1).normal(size=variable.shape).astype("float32"))
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    kept = block_mean(y, factor) if upscaler == "residual" else block_mean(backward(y, config.transform), factor)
    np.testing.assert_allclose(kept, coarse if upscaler == "residual" else mean, rtol=1e-4, atol=1e-4)
    generator.save(tmp_path / "g.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "g.keras")(x))[..., 0],
                               y, rtol=1e-5, atol=1e-5)


def test_an_interpolated_condition_needs_a_residual_or_split_upscaler():
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["m1"].update(upscaler="direct", interpolate_condition=True)
    with pytest.raises(InputError, match=re.escape("m1.interpolate_condition sets where the residual or split")):
        parse_config(table)
