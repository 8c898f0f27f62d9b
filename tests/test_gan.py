"""WGAN-GP: the penalty on analytic critics, one train step per kind of scale, seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest

from nbgan_app.config import load_config

from conftest import ROOT

pytestmark = pytest.mark.backends


@pytest.fixture(autouse=True, scope="module")
def _jax_compilation_cache(tmp_path_factory):
    """On JAX, XLA compilation dominates these tests: identical step programs compile once."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax-cache")))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield


def _penalty(weight_norm, gp_weight=10.0):
    from keras import ops

    from nbgan_app.gan.wgan_gp import gradient_penalty

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4, 4, 1)).astype("float32")
    w = ops.convert_to_tensor(w * weight_norm / np.linalg.norm(w))
    real = ops.convert_to_tensor(rng.normal(size=(3, 4, 4, 4, 1)).astype("float32"))
    fake = ops.convert_to_tensor(rng.normal(size=(3, 4, 4, 4, 1)).astype("float32"))
    weights = ops.convert_to_tensor(rng.uniform(size=(3, 1, 1, 1, 1)).astype("float32"))

    def linear_critic(x):  # D(x) = <w, x>: its input gradient is w for every sample
        return ops.sum(x * w, axis=(1, 2, 3, 4))

    return float(ops.convert_to_numpy(gradient_penalty(linear_critic, real, fake, weights, gp_weight)))


def test_penalty_of_a_linear_critic_is_analytic():
    assert _penalty(1.0) == pytest.approx(0.0, abs=1e-6)
    assert _penalty(2.0) == pytest.approx(10.0, rel=1e-5)
    assert _penalty(3.0, gp_weight=1.0) == pytest.approx(4.0, rel=1e-5)


def _tiny_gan(scale, seed=0, num_critic_steps=1, **model):
    """The tiny config's GAN of `scale`, its model section's keys replaced by `model`."""
    import dataclasses

    import keras

    from nbgan_app import scales
    from nbgan_app.models.factory import build_gan, build_optimizers

    config = load_config(ROOT / "configs" / "tiny.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed,
                                                                   num_critic_steps=num_critic_steps),
                                 **{(section := scales.scale(scale).section):
                                    dataclasses.replace(getattr(config, section), **model)})
    keras.utils.set_random_seed(seed)  # same initial weights for the same seed
    gan = build_gan(config, scale)
    gan.compile(*build_optimizers(config.train))
    return gan, config


def _tiny_data(config, scale):
    """One train step's real data: B items of n fresh batches each (transformed space is >= 0)."""
    rng = np.random.default_rng(1)
    n, batch, p = config.train.num_critic_steps, config.train.batch_size, config.pyramid.patch
    if scale == "3":
        side = config.level_size("3")
        return (rng.gamma(2.0, size=(batch, n) + (side,) * 3 + (1,)).astype("float32"),)
    windows = rng.gamma(2.0, size=(batch, n) + (2 * p,) * 3 + (1,)).astype("float32")
    if scale == "uni":
        return (windows,)
    f = config.factor(scale)
    if config.lookahead(scale):  # coarse windows one patch longer past the target's high faces
        longer = rng.gamma(2.0, size=(batch, n) + (3 * p,) * 3 + (1,)).astype("float32")
        windows = np.ascontiguousarray(longer[:, :, :2 * p, :2 * p, :2 * p])
        return windows, longer.reshape((batch, n) + (3 * p // f, f) * 3 + (1,)).mean(axis=(3, 5, 7))
    coarse = windows.reshape((batch, n) + (2 * p // f, f) * 3 + (1,)).mean(axis=(3, 5, 7))
    return windows, coarse


def _weights(model):
    from keras import ops

    return [ops.convert_to_numpy(v) for v in model.trainable_variables]


# One critic step keeps JAX's compile time down; M2 takes two, each on its own real batch, and once
# more with a critic focused on the target patch and 2 cells of context that also sees counts. Mu
# rounds to whole particles: the generator still learns, through the rounding. M1's critic sees the
# target patch's power spectrum: the penalty's second derivatives pass through it; its generator's
# loss has the count term too. The residual M1 with the lookahead sees the coarse patches past its
# target's high faces; its generator's loss has the spectrum term.
@pytest.mark.parametrize("scale, num_critic_steps, model", [
    ("3", 1, {}), ("2", 2, {}), ("2", 1, {"critic_margin": 2, "critic_count_unit": 4.0}),
    ("uni", 1, {"whole_particles": True}), ("1", 1, {"critic_spectrum": True, "count_weight": 1.0}),
    ("1", 1, {"upscaler": "residual", "lookahead": True, "spectrum_weight": 1.0})])
def test_one_train_step_has_finite_losses_and_moves_both_networks(scale, num_critic_steps, model):
    gan, config = _tiny_gan(scale, num_critic_steps=num_critic_steps, **model)
    before = (_weights(gan.generator), _weights(gan.critic))
    logs = gan.train_on_batch(*_tiny_data(config, scale), return_dict=True)
    assert set(logs) >= {"critic_loss", "generator_loss", "gradient_penalty", "wasserstein"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    for old, new in zip(before, (_weights(gan.generator), _weights(gan.critic))):
        assert any(not np.allclose(a, b) for a, b in zip(old, new))
    assert int(gan.d_optimizer.iterations) == config.train.num_critic_steps
    assert int(gan.g_optimizer.iterations) == 1


def test_same_seed_gives_identical_steps_and_the_seed_state_is_saved(tmp_path):
    first, config = _tiny_gan("3", seed=3)
    second, _ = _tiny_gan("3", seed=3)
    data = _tiny_data(config, "3")
    first.save_weights(tmp_path / "start.weights.h5")
    logs = [first.train_on_batch(*data, return_dict=True), second.train_on_batch(*data, return_dict=True)]
    assert logs[0] == logs[1]
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    # Restoring the start weights restores the seed state too: the step repeats exactly.
    first.load_weights(tmp_path / "start.weights.h5")
    assert first.train_on_batch(*data, return_dict=True) == logs[0]
    np.testing.assert_array_equal(_weights(first)[0], _weights(second)[0])


def test_the_count_channel_is_the_windows_counts_and_the_gan_keeps_it_in_its_config():
    """With `critic_count_unit`, the critic's last input channel is the (real or generated) window's
    counts / unit; the other channels are those of a critic without it."""
    import keras
    from keras import ops

    from nbgan_app.transforms import backward

    gan, config = _tiny_gan("2", critic_count_unit=4.0)
    plain, _ = _tiny_gan("2")
    windows, coarse = (ops.convert_to_tensor(x[:, 0]) for x in _tiny_data(config, "2"))
    latent = keras.random.normal((windows.shape[0],) + (config.pyramid.patch,) * 3 + (1,), seed=1)
    g = (gan.generator.trainable_variables, gan.generator.non_trainable_variables)
    fake_in, real_in = (ops.convert_to_numpy(x) for x in gan._generate(*g, windows, coarse, latent))
    plain_fake, plain_real = (ops.convert_to_numpy(x) for x in plain._generate(*g, windows, coarse, latent))
    assert real_in.shape[-1] == plain_real.shape[-1] + 1 == gan.critic.input_shape[-1]
    np.testing.assert_array_equal(real_in[..., :-1], plain_real)
    np.testing.assert_array_equal(fake_in[..., :-1], plain_fake)
    for with_counts, window in ((real_in, plain_real), (fake_in, plain_fake)):
        np.testing.assert_allclose(with_counts[..., -1], backward(window[..., 0], config.transform) / 4.0,
                                   rtol=1e-5, atol=1e-5)
    assert not np.array_equal(fake_in[..., -1], real_in[..., -1])  # the fake target's counts
    clone = gan.__class__.from_config(gan.get_config())
    assert clone.counts == gan.counts == {"kind": config.transform.kind, "c": config.transform.c,
                                          "scale": config.transform.scale, "unit": 4.0, "weight": 0.0}


def _added_loss(**model):
    """(GAN, config, the target patches' counts (fake, real) as NumPy arrays, how much the generator loss of
    the tiny M1 with `model`'s keys exceeds that of the same M1 without them), on one batch and latent."""
    import keras
    from keras import ops

    from nbgan_app.transforms import backward

    gan, config = _tiny_gan("1", upscaler="residual", **model)
    plain, _ = _tiny_gan("1", upscaler="residual")
    windows, coarse = (ops.convert_to_tensor(x[:, 0]) for x in _tiny_data(config, "1"))
    p = config.pyramid.patch
    latent = keras.random.normal((windows.shape[0],) + (p,) * 3 + (1,), seed=1)
    g = (gan.generator.trainable_variables, gan.generator.non_trainable_variables)
    c = (gan.critic.trainable_variables, gan.critic.non_trainable_variables)
    args = (windows, coarse, latent)
    added = (float(ops.convert_to_numpy(gan._generator_loss(*g, *c, *args)[0]))
             - float(ops.convert_to_numpy(plain._generator_loss(*g, *c, *args)[0])))
    fake_in, _ = gan._generate(*g, *args)
    counts = tuple(backward(ops.convert_to_numpy(x)[:, p:, p:, p:, 0], config.transform).astype(np.float64)
                   for x in (fake_in, windows))
    assert gan.critic.count_params() == plain.critic.count_params()  # the critic sees nothing new
    return gan, config, counts, added


def test_the_count_loss_adds_the_squared_log_ratio_of_the_patches_particles():
    """With `count_weight` w the generator's loss is the plain one + w * (log(1 + S_fake) -
    log(1 + S_real))^2, S the particles of the batch's target patches; the critic sees no count
    channel for it."""
    _, _, (fake, real), added = _added_loss(count_weight=2.5)
    expected = 2.5 * (np.log1p(fake.sum()) - np.log1p(real.sum())) ** 2
    assert expected > 1e-3  # an untrained generator's patches are off the real ones'
    assert added == pytest.approx(expected, rel=1e-3)


def test_the_spectrum_loss_adds_the_squared_difference_of_the_batchs_mean_log_shell_power():
    """With `spectrum_weight` w the generator's loss is the plain one + w * the mean over shells of
    (mean over the batch of log(EPS + shell power) of the fake target patches' counts - that of the real
    ones)^2, the shell power as NumPy's FFT gives it; the critic is the plain one."""
    from nbgan_app.models.spectrum import EPS

    gan, config, (fake, real), added = _added_loss(spectrum_weight=3.0)
    assert gan.__class__.from_config(gan.get_config()).spectrum_weight == 3.0
    p = config.pyramid.patch
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*[np.fft.fftfreq(p, 1 / p)] * 3, indexing="ij")))
    shells = np.rint(k).astype(int)

    def mean_log_shells(patches):
        power = np.abs(np.fft.fftn(patches, axes=(1, 2, 3))) ** 2 / p**3
        return np.log(np.stack([[b[shells == j].mean() for j in range(1, shells.max() + 1)] for b in power])
                      + EPS).mean(axis=0)

    expected = 3.0 * np.mean((mean_log_shells(fake) - mean_log_shells(real)) ** 2)
    assert expected > 1e-3  # an untrained up-scaler's patches lack the real ones' small-scale power
    assert added == pytest.approx(expected, rel=1e-3)
