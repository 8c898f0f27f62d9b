"""Optional network layers: focused and spectrum critics, whole particles, smoothed and heavy-tailed
latents, the cap on a voxel's count; the config's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from nbgan_app.models.factory import build_critic, build_generator

from conftest import ROOT, config_named


@pytest.mark.backends
def test_a_focused_critic_scores_the_target_and_its_margin_only_and_saves(tmp_path):
    """With `critic_margin` m, a window critic's score depends on the window's last (p + m)^3 cells
    alone: changing any other cell leaves it bit for bit, changing one inside moves it."""
    import dataclasses

    import keras

    config = config_named("tiny")
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

    config = config_named("tiny")
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
@pytest.mark.parametrize("scale", ["1", "uni"])
def test_a_whole_particle_generator_rounds_its_expected_counts_by_its_latent_and_saves(scale, tmp_path):
    """whole_particles: the output is the transform of whole numbers, each the floor or the ceiling of
    the same network's expected count, chosen by the voxel's latent alone; it saves and reloads."""
    import dataclasses

    import keras

    from nbgan_app import scales
    from nbgan_app.transforms import backward, forward

    to_numpy = keras.ops.convert_to_numpy

    config = config_named("tiny")
    section = scales.scale(scale).section
    expected_net = build_generator(getattr(config, section), scale, config)
    model = dataclasses.replace(getattr(config, section), whole_particles=True)
    generator = build_generator(model, scale, config)
    generator.set_weights(expected_net.get_weights())  # the rounding layer has no weights
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4,) + (config.pyramid.patch,) * 3 + (generator.input_shape[-1],)).astype("float32")
    x[..., 1:] = forward(rng.gamma(0.5, 6.0, size=x[..., 1:].shape), config.transform)
    expected = backward(to_numpy(expected_net(x))[..., 0], config.transform)
    counts = backward(to_numpy(generator(x))[..., 0], config.transform)
    whole = np.rint(counts)
    assert np.all(np.abs(counts - whole) <= 1e-4 * np.maximum(whole, 1))
    assert expected.std() > 0.2 and not np.allclose(whole, np.rint(expected))  # fractions, rounded at random
    assert np.all((whole == np.floor(expected)) | (whole == np.floor(expected) + 1))
    frac = expected - np.floor(expected)
    assert abs(whole.sum() - expected.sum()) < 4 * np.sqrt(np.sum(frac * (1 - frac)))
    # the draw is the latent's: the same input rounds the same way, another latent another way
    np.testing.assert_array_equal(to_numpy(generator(x)), to_numpy(generator(x)))
    other = x.copy()
    other[..., 0] = rng.normal(size=x[..., 0].shape)
    assert not np.array_equal(to_numpy(generator(other)), to_numpy(expected_net(other)))
    generator.save(tmp_path / "g.keras")
    np.testing.assert_array_equal(to_numpy(keras.saving.load_model(tmp_path / "g.keras")(x)),
                                  to_numpy(generator(x)))


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

    config = config_named("tiny")
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

    config = config_named("tiny")
    for scale, section in (("3", "m3"), ("1", "m1")):
        model_config = dataclasses.replace(getattr(config, section), latent_tail=0.2)
        generator = build_generator(model_config, scale, config)
        assert any(isinstance(layer, HeavyTail) for layer in generator.layers)
        inputs = np.random.default_rng(1).normal(size=(2,) + generator.input_shape[1:]).astype("float32")
        generator.save(tmp_path / f"g{scale}.keras")
        loaded = keras.saving.load_model(tmp_path / f"g{scale}.keras")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)),
                                   keras.ops.convert_to_numpy(generator(inputs)), rtol=1e-5, atol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("scale", ["1", "uni"])
def test_max_count_caps_each_voxel_and_leaves_the_rest_and_saves(scale, tmp_path):
    """max_count: a voxel the same network writes above the transform of max_count holds exactly that,
    every other voxel is unchanged, and a saved model keeps the cap."""
    import dataclasses

    import keras

    from nbgan_app import scales
    from nbgan_app.transforms import backward, forward

    config = config_named("tiny")
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

    config = config_named("tiny")
    cap = Ceiling(20.0, **dataclasses.asdict(config.transform))
    y = np.linspace(0.0, 2 * float(forward(np.array(20.0), config.transform)), 24, dtype="float32").reshape(1, 24, 1)
    weights = np.arange(1, 25, dtype="float32").reshape(1, 24, 1)
    capped = keras.ops.convert_to_numpy(keras.ops.stop_gradient(cap(y)))
    assert (capped < y).sum() >= 10
    w = keras.ops.convert_to_tensor(weights)
    grad = input_gradient(lambda t: keras.ops.multiply(cap(t), w), keras.ops.convert_to_tensor(y))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.stop_gradient(grad)), weights)


@pytest.mark.parametrize("section, key, value, message", [
    ("m1", "critic_margin", -1, r"m1\.critic_margin: expected 0 to the patch side 4 .*Received: -1"),
    ("m1", "critic_margin", 5, r"m1\.critic_margin: expected 0 to the patch side 4 .*Received: 5"),
    ("m2", "critic_count_unit", -2.0, r"m2\.critic_count_unit: expected particles per unit > 0, or 0"),
    ("m2", "whole_particles", True, r"m2\.whole_particles rounds level 1 to whole particles; M2 makes level 2"),
    ("m1", "latent_smoothing", -1, r"m1\.latent_smoothing: expected a half-width .* patch side 4\. Received: -1"),
    ("m1", "latent_smoothing", 2, r"m1\.latent_smoothing: expected a half-width .* patch side 4\. Received: 2"),
    ("m1", "max_count", -5,
     r"m1\.max_count: expected the most particles a voxel may hold, > 0, or 0 for no cap\. Received: -5"),
])
def test_a_senseless_option_is_refused(section, key, value, message):
    """Each option's check names the key, what it expects and what it received."""
    from nbgan_app.config import parse_config, read_toml
    from nbgan_app.errors import InputError

    table = read_toml(ROOT / "configs" / "tiny.toml")
    table[section][key] = value
    with pytest.raises(InputError, match=message):
        parse_config(table)
