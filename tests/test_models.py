"""Networks: parameter counts, shapes at every config's sizes, block choices, config and save round trips."""

from __future__ import annotations

import numpy as np
import pytest

from nbgan_app.models import blocks
from nbgan_app.models.factory import build_critic, build_generator

from conftest import config_named

SCALES = ("3", "2", "1", "uni")

# (generator, critic) parameter counts, computed once from the builders and pinned.
PARAMS = {
    "tiny": {"3": (1205, 1037), "2": (4123, 2489), "1": (4123, 2489), "uni": (3845, 1933)},
    "demo": {"3": (48145, 33495), "2": (16147, 19723), "1": (16147, 19723), "uni": (15689, 18807)},
    "paper": {"3": (723433, 428485), "2": (1320283, 435161), "1": (342307, 435161), "uni": (340625, 428485)},
}


def _networks(config, scale):
    model = config.model(scale)
    return build_generator(model, scale, config), build_critic(model, scale, config)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_are_pinned(name):
    config = config_named(name)
    for scale in SCALES:
        generator, critic = _networks(config, scale)
        assert (generator.count_params(), critic.count_params()) == PARAMS[name][scale], scale


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_shapes_follow_the_config(name):
    config = config_named(name)
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
    config = config_named("paper")
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

    config = config_named("tiny")
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
