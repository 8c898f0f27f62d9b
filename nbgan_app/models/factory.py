"""From a Config to networks and a WGAN-GP model, for scale "3", "2", "1" or "uni".

Shapes: M3 makes whole cubes of side `config.level_size("3")` from a
`latent_dim` vector; M2/M1/Mu make patches of side `config.pyramid.patch`
from (2p)^d windows; M2 and M1 are conditioned on the coarse level (up-sampled
coarse target in the generator, up(coarse) and residual channels in the
critic), Mu is not. Everything a network needs is a constructor argument, so
a saved model carries it.
"""

from __future__ import annotations

import keras

from nbgan_app import windows
from nbgan_app.config import Config, ModelConfig, TrainConfig, check_scale
from nbgan_app.models.critics import build_critic as _build_critic
from nbgan_app.models.generators import build_cube_generator, build_patch_generator

NDIM = 3
ACTIVATION = "leaky_relu"  # hidden layers; see nbgan_app.models.blocks


def is_conditional(scale: str) -> bool:
    """Whether the scale's model sees the coarser level (M2, M1)."""
    return check_scale(scale) in ("2", "1")


def build_generator(model_config: ModelConfig, scale: str, config: Config) -> keras.Model:
    """The generator of `scale` with the architecture `model_config`."""
    m = model_config
    common = dict(architecture=m.architecture, kernel_sizes=m.kernel_sizes, activation=ACTIVATION,
                  output_activation=m.output_activation, ndim=NDIM, name=f"generator_{scale}")
    if check_scale(scale) == "3":
        return build_cube_generator(m.latent_dim, config.level_size("3"), m.dense_units, m.initial_size,
                                    m.generator_filters, m.generator_strides, **common)
    channels = windows.context_channels(NDIM, is_conditional(scale))
    residual = {}
    if m.upscaler == "residual":
        residual = dict(residual_factor=config.factor(scale), residual_bound=residual_bound(config))
    return build_patch_generator(config.pyramid.patch, channels, m.generator_filters, **common, **residual)


def residual_bound(config: Config) -> float:
    """|r| bound of a residual up-scaler: the transform of c, where its logarithmic range ends."""
    import numpy as np

    from nbgan_app.transforms import forward

    return float(forward(np.array(config.transform.c), config.transform))


def build_critic(model_config: ModelConfig, scale: str, config: Config) -> keras.Model:
    """The critic of `scale`: whole cubes for M3, (2p)^d windows (+ coarse channels for M2/M1) otherwise."""
    m = model_config
    if check_scale(scale) == "3":
        side, channels = config.level_size("3"), 1
    else:
        side, channels = 2 * config.pyramid.patch, 3 if is_conditional(scale) else 1
    return _build_critic(side, channels, m.critic_filters, m.critic_strides, m.critic_dense,
                         architecture=m.architecture, kernel_sizes=m.kernel_sizes, activation=ACTIVATION,
                         ndim=NDIM, name=f"critic_{scale}")


def build_gan(config: Config, scale: str):
    """The (uncompiled) WGAN-GP model of `scale`; compile it with `build_optimizers(config.train)`."""
    from nbgan_app.gan.wgan_gp import WGANGP

    model_config = config.model(scale)
    whole_cube = scale == "3"
    return WGANGP(build_generator(model_config, scale, config), build_critic(model_config, scale, config),
                  coarse=None if whole_cube else is_conditional(scale), whole_cube=whole_cube,
                  num_critic_steps=config.train.num_critic_steps, gp_weight=config.train.gp_weight,
                  seed=config.train.seed, name=f"wgan_gp_{scale}")


def build_optimizers(train: TrainConfig):
    """(critic optimizer, generator optimizer) from the train config (RMSprop by default).

    Adam takes the WGAN-GP paper's moments (beta_1 0.5, beta_2 0.9): a first
    moment that forgets fast, because the critic the generator chases moves.
    """
    if train.optimizer == "adam":
        def make(lr, name):
            return keras.optimizers.Adam(learning_rate=lr, beta_1=0.5, beta_2=0.9, name=name)
    else:
        def make(lr, name):
            return keras.optimizers.RMSprop(learning_rate=lr, name=name)
    return (make(train.critic_learning_rate, "critic_optimizer"),
            make(train.generator_learning_rate, "generator_optimizer"))
