"""Networks: parameter counts, shapes at every config's sizes, block choices, config and save round trips."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nbgan_app.config import load_config
from nbgan_app.models import blocks
from nbgan_app.models.factory import build_critic, build_generator

from conftest import ROOT

SCALES = ("3", "2", "1", "uni")

# (generator, critic) parameter counts, computed once from the builders and pinned.
PARAMS = {
    "tiny": {"3": (1205, 1037), "2": (4123, 2489), "1": (4123, 2489), "uni": (3845, 1933)},
    "demo": {"3": (48145, 33495), "2": (16147, 19723), "1": (16147, 19723), "uni": (15689, 18807)},
    "paper": {"3": (723433, 428485), "2": (1320283, 435161), "1": (342307, 435161), "uni": (340625, 428485)},
}


def _config(name):
    return load_config(ROOT / "configs" / f"{name}.toml")


def _networks(config, scale):
    model = config.model(scale)
    return build_generator(model, scale, config), build_critic(model, scale, config)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_are_pinned(name):
    config = _config(name)
    for scale in SCALES:
        generator, critic = _networks(config, scale)
        assert (generator.count_params(), critic.count_params()) == PARAMS[name][scale], scale


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_shapes_follow_the_config(name):
    config = _config(name)
    p, s3 = config.pyramid.patch, config.level_size("3")
    for scale in SCALES:
        generator, critic = _networks(config, scale)
        if scale == "3":
            assert generator.input_shape == (None, config.m3.latent_dim)
            assert generator.output_shape == (None, s3, s3, s3, 1)
            assert critic.input_shape == (None, s3, s3, s3, 1)
        else:
            channels = 9 if scale in ("2", "1") else 8  # latent + 7 neighbours (+ up-sampled coarse target)
            assert generator.input_shape == (None, p, p, p, channels)
            assert generator.output_shape == (None, p, p, p, 1)
            assert critic.input_shape == (None, 2 * p, 2 * p, 2 * p, 3 if scale in ("2", "1") else 1)
        assert critic.output_shape == (None, 1)
        assert critic.compute_output_shape((5,) + critic.input_shape[1:]) == (5, 1)


def test_branch_filters_sum_to_the_block_width():
    assert blocks.branch_filters(64, 3) == [21, 21, 22]
    assert blocks.branch_filters(2, 3) == [0, 1, 1]
    assert blocks.branch_filters(1, 3) == [0, 0, 1]
    for filters in range(1, 40):
        assert sum(blocks.branch_filters(filters, 3)) == filters


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_architectures_differ_as_documented():
    from nbgan_app.models.generators import build_patch_generator

    kwargs = dict(patch=8, context_channels=8, filters=(4, 4, 4, 4, 4, 1))
    dcgan = build_patch_generator(architecture="dcgan", **kwargs)
    inception = build_patch_generator(architecture="inception", **kwargs)
    residual = build_patch_generator(architecture="inception_residual", **kwargs)
    assert "Concatenate" not in _layer_types(dcgan) and "Add" not in _layer_types(dcgan)
    assert "Concatenate" in _layer_types(inception) and "Add" not in _layer_types(inception)
    # first layer sets the width, then pairs (1, 2), (3, 4) get skips; the output layer has none
    assert _layer_types(residual).count("Add") == 2
    assert residual.count_params() == inception.count_params()


def test_paper_m2_generator_has_three_residual_pairs():
    config = _config("paper")
    generator, critic = _networks(config, "2")
    assert _layer_types(generator).count("Add") == 3
    assert "Add" not in _layer_types(critic)


def test_merge_option_keeps_the_block_width():
    import keras

    x = keras.Input((8, 8, 8, 5))
    y = blocks.inception(x, 6, kernel_sizes=(1, 2, 4), merge=True, name="m")
    model = keras.Model(x, y)
    assert y.shape == (None, 8, 8, 8, 6)
    assert "m_merge" in [layer.name for layer in model.layers]
    # 3 branches of 6 filters each, then a 1x1 merge of 18 -> 6 channels
    assert model.count_params() == 6 * 5 * (1 + 8 + 64) + 3 * 6 + 18 * 6 + 6


def test_two_dimensional_networks_build_through_the_same_code():
    from nbgan_app.models.critics import build_critic as critic_2d
    from nbgan_app.models.generators import build_cube_generator

    generator = build_cube_generator(8, 16, 16, 2, (4, 4, 1), (2, 2, 2), ndim=2)
    critic = critic_2d(16, 1, (4, 2), (2, 1), (8,), ndim=2)
    assert generator.output_shape == (None, 16, 16, 1)
    assert critic.output_shape == (None, 1)


def test_bad_architecture_arguments_raise():
    from nbgan_app.models.generators import build_cube_generator, build_patch_generator

    with pytest.raises(ValueError, match="ending with 1"):
        build_patch_generator(4, 8, (4, 2))
    with pytest.raises(ValueError, match="dense_units"):
        build_cube_generator(8, 8, 15, 2, (4, 1), (2, 2))
    with pytest.raises(ValueError, match="cube_size"):
        build_cube_generator(8, 16, 16, 2, (4, 1), (2, 2))
    with pytest.raises(ValueError, match="architecture"):
        build_patch_generator(4, 8, (4, 1), architecture="resnet")


@pytest.mark.backends
@pytest.mark.parametrize("scale", ["3", "2"])
def test_config_round_trip_and_save_load_give_the_same_outputs(scale, tmp_path):
    import keras

    config = _config("tiny")
    for model in _networks(config, scale):
        x = np.random.default_rng(0).normal(size=(2,) + model.input_shape[1:]).astype("float32")
        expected = keras.ops.convert_to_numpy(model(x))
        assert expected.shape == (2,) + model.output_shape[1:]
        clone = model.__class__.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), expected, rtol=1e-5, atol=1e-6)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert loaded.count_params() == model.count_params()
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-5, atol=1e-6)


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

    config = _config("tiny")
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

    config = _config("tiny")
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


@pytest.mark.backends
def test_a_focused_critic_scores_the_target_and_its_margin_only_and_saves(tmp_path):
    """With `critic_margin` m, a window critic's score depends on the window's last (p + m)^3 cells
    alone: changing any other cell leaves it bit for bit, changing one inside moves it."""
    import dataclasses

    import keras

    config = _config("tiny")
    p, margin = config.pyramid.patch, 2
    focused = dataclasses.replace(config, m1=dataclasses.replace(config.m1, critic_margin=margin))
    critic = build_critic(focused.m1, "1", focused)
    assert critic.input_shape[1:] == (2 * p,) * 3 + (3,)  # the same windows as the whole-window critic
    assert critic.count_params() < build_critic(config.m1, "1", config).count_params()
    x = np.random.default_rng(0).normal(size=(2,) + critic.input_shape[1:]).astype("float32")
    score = keras.ops.convert_to_numpy(critic(x))
    for cell in [(0, 0, 0), (p - margin - 1, 2 * p - 1, 2 * p - 1), (2 * p - 1, 0, p)]:  # outside the focus
        moved = x.copy()
        moved[(slice(None),) + cell] += 5.0
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(critic(moved)), score)
    moved = x.copy()
    moved[:, p - margin, p - margin, p - margin] += 5.0  # the focus's first context cell
    assert not np.allclose(keras.ops.convert_to_numpy(critic(moved)), score)
    critic.save(tmp_path / "critic.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "critic.keras")(x)),
                               score, rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_a_spectrum_critic_sees_the_target_patchs_shell_power_and_saves(tmp_path):
    """`ShellPower` is log(EPS + the mean |FFT|^2 / p^3 over each shell of integer |k|) of channel 0's last
    p^3 cells, as NumPy's FFT gives it; a critic with `critic_spectrum` feeds it to its dense layers."""
    import dataclasses

    import keras

    from nbgan_app.models.spectrum import EPS, ShellPower, shell_matrix

    config = _config("tiny")
    p = config.pyramid.patch
    x = np.random.default_rng(0).lognormal(size=(2,) + (2 * p,) * 3 + (3,)).astype("float32")
    patch = x[:, -p:, -p:, -p:, 0]
    power = np.abs(np.fft.fftn(patch.astype(np.float64), axes=(1, 2, 3))) ** 2 / p**3
    k = np.sqrt(sum(g**2 for g in np.meshgrid(*[np.fft.fftfreq(p, 1 / p)] * 3, indexing="ij")))
    shells = np.rint(k).astype(int)
    expected = np.stack([[power[i][shells == j].mean() for j in range(1, shells.max() + 1)] for i in range(2)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ShellPower(p)(x)), np.log(expected + EPS), rtol=1e-4,
                               atol=1e-4)
    assert shell_matrix(16, 3).shape == (16**3, 14)  # the demo's patch: 14 shells up to the corner
    seeing = dataclasses.replace(config, m1=dataclasses.replace(config.m1, critic_spectrum=True))
    critic = build_critic(seeing.m1, "1", seeing)
    assert critic.get_layer("shell_power").output.shape[-1] == shells.max()
    assert critic.count_params() > build_critic(config.m1, "1", config).count_params()
    score = keras.ops.convert_to_numpy(critic(x))
    critic.save(tmp_path / "critic.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "critic.keras")(x)),
                               score, rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_a_count_split_upscaler_keeps_its_blocks_particles_and_saves(tmp_path):
    """upscaler = "split": the block means of the output's counts equal the coarse voxel's mean count
    at initialisation and after the weights move; an untrained one is the up-sampled condition."""
    import dataclasses

    import keras

    from nbgan_app.pyramid import block_mean
    from nbgan_app.transforms import backward, forward

    config = _config("tiny")
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

    config = _config("tiny")
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


@pytest.mark.backends
@pytest.mark.parametrize("scale", ["1", "uni"])
def test_a_whole_particle_generator_rounds_its_expected_counts_by_its_latent_and_saves(scale, tmp_path):
    """whole_particles: the output is the transform of whole numbers, each the floor or the ceiling of
    the same network's expected count, chosen by the voxel's latent alone; it saves and reloads."""
    import dataclasses

    import keras

    from nbgan_app import scales
    from nbgan_app.transforms import backward, forward

    config = _config("tiny")
    section = scales.scale(scale).section
    expected_net = build_generator(getattr(config, section), scale, config)
    model = dataclasses.replace(getattr(config, section), whole_particles=True)
    generator = build_generator(model, scale, config)
    generator.set_weights(expected_net.get_weights())  # the rounding layer has no weights
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4,) + (config.pyramid.patch,) * 3 + (generator.input_shape[-1],)).astype("float32")
    x[..., 1:] = forward(rng.gamma(0.5, 6.0, size=x[..., 1:].shape), config.transform)
    expected = backward(keras.ops.convert_to_numpy(expected_net(x))[..., 0], config.transform)
    counts = backward(keras.ops.convert_to_numpy(generator(x))[..., 0], config.transform)
    whole = np.rint(counts)
    assert np.all(np.abs(counts - whole) <= 1e-4 * np.maximum(whole, 1))
    assert expected.std() > 0.2 and not np.allclose(whole, np.rint(expected))  # fractions, rounded at random
    assert np.all((whole == np.floor(expected)) | (whole == np.floor(expected) + 1))
    frac = expected - np.floor(expected)
    assert abs(whole.sum() - expected.sum()) < 4 * np.sqrt(np.sum(frac * (1 - frac)))
    # the draw is the latent's: the same input rounds the same way, another latent another way
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(generator(x)), keras.ops.convert_to_numpy(generator(x)))
    other = x.copy()
    other[..., 0] = rng.normal(size=x[..., 0].shape)
    assert not np.array_equal(keras.ops.convert_to_numpy(generator(other)), keras.ops.convert_to_numpy(expected_net(other)))
    generator.save(tmp_path / "g.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "g.keras")(x)),
                                  keras.ops.convert_to_numpy(generator(x)))


@pytest.mark.backends
def test_a_smoothed_latent_is_unit_normal_per_voxel_correlated_over_cells_and_saves(tmp_path):
    """latent_smoothing: the generator's layers see its latent N(0, 1) at every voxel, the patch's
    corners included, correlated with its neighbours; the context channels pass untouched."""
    import dataclasses

    import keras

    from nbgan_app.models.latent import SmoothLatent

    x = np.random.default_rng(0).standard_normal((3000, 8, 8, 8, 2)).astype("float32")
    y = keras.ops.convert_to_numpy(SmoothLatent(2)(x))
    np.testing.assert_array_equal(y[..., 1], x[..., 1])
    z = y[..., 0]
    for voxel in ((0, 0, 0), (4, 4, 4), (7, 0, 3)):
        assert abs(z[(slice(None),) + voxel].std() - 1) < 0.05
    lag1 = np.mean(z[:, 3:5, 3:5, 3:5] * z[:, 4:6, 3:5, 3:5])
    assert 0.7 < lag1 < 0.9 and abs(np.mean(x[:, 1:, :, :, 0] * x[:, :-1, :, :, 0])) < 0.01

    config = _config("tiny")
    m1 = dataclasses.replace(config.m1, latent_smoothing=1)
    generator = build_generator(m1, "1", config)
    assert any(isinstance(layer, SmoothLatent) for layer in generator.layers)
    assert generator.count_params() == build_generator(config.m1, "1", config).count_params()
    inputs = np.random.default_rng(1).normal(size=(2,) + (config.pyramid.patch,) * 3
                                             + (generator.input_shape[-1],)).astype("float32")
    generator.save(tmp_path / "g.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "g.keras")(inputs)),
                               keras.ops.convert_to_numpy(generator(inputs)), rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_a_heavy_tailed_latent_keeps_unit_variance_stretches_the_tails_and_saves(tmp_path):
    """latent_tail: Tukey's h at unit variance, monotonic, on M3's whole latent and on a patch
    generator's latent channel only; both generators save and load with it."""
    import dataclasses

    import keras

    from nbgan_app.models.latent import HeavyTail

    z = np.random.default_rng(0).standard_normal((400_000, 2)).astype("float32")
    y = keras.ops.convert_to_numpy(HeavyTail(0.2)(z))
    assert abs(y.std() - 1) < 0.02 and np.all(np.diff(y[np.argsort(z[:, 0]), 0]) >= 0)
    assert np.mean(np.abs(y) > 4) > 20 * np.mean(np.abs(z) > 4)  # far more 4-sigma numbers than a Gaussian's
    np.testing.assert_allclose(keras.ops.convert_to_numpy(HeavyTail(0.2)(np.array([[3.0]], "float32"))),
                               [[3 * np.exp(0.9) * 0.6 ** 0.75]], rtol=1e-5)
    y = keras.ops.convert_to_numpy(HeavyTail(0.2, first_channel=True)(z))
    np.testing.assert_array_equal(y[:, 1], z[:, 1])
    assert not np.allclose(y[:, 0], z[:, 0])

    config = _config("tiny")
    for scale, section in (("3", "m3"), ("1", "m1")):
        model_config = dataclasses.replace(getattr(config, section), latent_tail=0.2)
        generator = build_generator(model_config, scale, config)
        assert any(isinstance(layer, HeavyTail) for layer in generator.layers)
        inputs = np.random.default_rng(1).normal(size=(2,) + generator.input_shape[1:]).astype("float32")
        generator.save(tmp_path / f"g{scale}.keras")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / f"g{scale}.keras")(inputs)),
                                   keras.ops.convert_to_numpy(generator(inputs)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value", [-1, 2])
def test_a_latent_smoothing_past_half_the_patch_is_refused(value):
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["m1"]["latent_smoothing"] = value
    with pytest.raises(InputError, match=rf"m1\.latent_smoothing: expected a half-width .* patch side 4\. "
                                         rf"Received: {value}"):
        parse_config(table)


@pytest.mark.backends
@pytest.mark.parametrize("scale", ["1", "uni"])
def test_max_count_caps_each_voxel_and_leaves_the_rest_and_saves(scale, tmp_path):
    """max_count: a voxel the same network writes above the transform of max_count holds exactly that,
    every other voxel is unchanged, and a saved model keeps the cap."""
    import dataclasses

    import keras

    from nbgan_app import scales
    from nbgan_app.transforms import backward, forward

    config = _config("tiny")
    section = scales.scale(scale).section
    free = build_generator(getattr(config, section), scale, config)
    rng = np.random.default_rng(0)
    for variable in free.trainable_variables:  # spread the output over many counts
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype("float32"))
    x = rng.normal(size=(4,) + (config.pyramid.patch,) * 3 + (free.input_shape[-1],)).astype("float32")
    x[..., 1:] = forward(rng.gamma(0.5, 6.0, size=x[..., 1:].shape), config.transform)
    y_free = keras.ops.convert_to_numpy(free(x))[..., 0]
    cap = float(np.quantile(backward(y_free, config.transform), 0.9))
    generator = build_generator(dataclasses.replace(getattr(config, section), max_count=cap), scale, config)
    generator.set_weights(free.get_weights())  # the cap has no weights
    y = keras.ops.convert_to_numpy(generator(x))[..., 0]
    top = forward(np.array(cap), config.transform)
    above = y_free > top
    assert 0.05 < above.mean() < 0.15
    np.testing.assert_allclose(y[above], top, rtol=1e-6)
    np.testing.assert_array_equal(y[~above], y_free[~above])
    path = tmp_path / "g.keras"
    generator.save(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.saving.load_model(path)(x))[..., 0], y)


@pytest.mark.backends
def test_the_cap_passes_the_gradient_straight_through():
    """A capped voxel's gradient is the uncapped one's, so a critic's verdict on it reaches the generator."""
    import dataclasses

    import keras

    from nbgan_app.gan.gradients import input_gradient
    from nbgan_app.models.ceiling import Ceiling
    from nbgan_app.transforms import forward

    config = _config("tiny")
    cap = Ceiling(20.0, **dataclasses.asdict(config.transform))
    y = np.linspace(0.0, 2 * float(forward(np.array(20.0), config.transform)), 24, dtype="float32").reshape(1, 24, 1)
    weights = np.arange(1, 25, dtype="float32").reshape(1, 24, 1)
    capped = keras.ops.convert_to_numpy(keras.ops.stop_gradient(cap(y)))
    assert (capped < y).sum() >= 10
    w = keras.ops.convert_to_tensor(weights)
    grad = input_gradient(lambda t: keras.ops.multiply(cap(t), w), keras.ops.convert_to_tensor(y))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.stop_gradient(grad)), weights)


def test_a_negative_max_count_is_refused():
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["m1"]["max_count"] = -5
    with pytest.raises(InputError, match=r"m1\.max_count: expected the most particles a voxel may hold, > 0, or 0 "
                                         r"for no cap\. Received: -5"):
        parse_config(table)


def test_whole_particles_are_refused_above_level_one():
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["m2"]["whole_particles"] = True
    with pytest.raises(InputError, match=r"m2\.whole_particles rounds level 1 to whole particles; M2 makes level 2"):
        parse_config(table)


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


def test_a_negative_count_unit_is_refused():
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["m2"]["critic_count_unit"] = -2.0
    with pytest.raises(InputError, match=r"m2\.critic_count_unit: expected particles per unit > 0, or 0"):
        parse_config(table)


@pytest.mark.parametrize("value", [-1, 5])
def test_a_critic_margin_past_the_window_is_refused(value):
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["m1"]["critic_margin"] = value
    with pytest.raises(InputError, match=rf"m1\.critic_margin: expected 0 to the patch side 4 .*Received: {value}"):
        parse_config(table)


def test_residual_upscaler_needs_a_condition():
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table["mu"]["upscaler"] = "residual"
    with pytest.raises(InputError, match="mu.upscaler"):
        parse_config(table, ROOT)
