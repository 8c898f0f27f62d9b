"""From a Config to networks and a WGAN-GP model, for a scale (`nbgan_app.scales`: "3", "2", "1", "uni").

Shapes: M3 makes whole cubes of side `config.level_size("3")` from a
`latent_dim` vector; M2/M1/Mu make patches of side `config.pyramid.patch`
from (2p)^d windows; M2 and M1 are conditioned on the coarse level (up-sampled
coarse target in the generator, up(coarse) and residual channels in the
critic), Mu is not. Everything a network needs is a constructor argument, so
a saved model carries it.
"""

from __future__ import annotations

import dataclasses

import keras

from nbgan_app import scales, windows
from nbgan_app.config import Config, ModelConfig, TrainConfig
from nbgan_app.scales import Scale
from nbgan_app.models.critics import build_critic as _build_critic
from nbgan_app.models.generators import build_cube_generator, build_patch_generator

NDIM = 3
ACTIVATION = "leaky_relu"  # hidden layers; see nbgan_app.models.blocks


def build_generator(model_config: ModelConfig, scale: str | Scale, config: Config) -> keras.Model:
    """The generator of `scale` with the architecture `model_config` (that scale's section type)."""
    m, scale = model_config, scales.scale(scale)
    common = dict(architecture=m.architecture, kernel_sizes=m.kernel_sizes, activation=ACTIVATION,
                  output_activation=m.output_activation, ndim=NDIM, name=f"generator_{scale.name}")
    if scale.whole_cube:
        return build_cube_generator(m.latent_dim, scale.side(config.pyramid), m.dense_units, m.initial_size,
                                    m.generator_filters, m.generator_strides, latent_tail=m.latent_tail, **common)
    channels = windows.context_channels(NDIM, scale.conditional, config.lookahead(scale))
    output = {}  # the output head: residual or split, then the ceiling, then whole particles
    if scale.conditional and m.upscaler in ("residual", "split"):
        output = dict(residual_factor=scale.factor(config.pyramid), residual_bound=residual_bound(config, m),
                      interpolate=m.interpolate_condition)
    if scale.conditional and m.upscaler == "split":
        output["split_transform"] = dataclasses.asdict(config.transform)
    if m.max_count:
        output["ceiling"] = dict(max_count=m.max_count, **dataclasses.asdict(config.transform))
    if m.whole_particles:
        output["whole_transform"] = dataclasses.asdict(config.transform)
    return build_patch_generator(config.pyramid.patch, channels, m.generator_filters, **common, **output,
                                 latent_smoothing=m.latent_smoothing, latent_tail=m.latent_tail)


def residual_bound(config: Config, model_config: ModelConfig) -> float:
    """|r| bound of a residual up-scaler: the section's `residual_bound`, or else the transform of c."""
    import numpy as np

    from nbgan_app.transforms import forward

    if model_config.residual_bound > 0:
        return float(model_config.residual_bound)
    return float(forward(np.array(config.transform.c), config.transform))


def build_critic(model_config: ModelConfig, scale: str | Scale, config: Config) -> keras.Model:
    """The critic of `scale`: whole cubes for M3, (2p)^d windows (+ coarse channels for M2/M1) otherwise.

    A window critic with `critic_margin` m > 0 looks at the window's last (p + m)^d cells: the target
    patch and m cells of its neighbours; with `critic_spectrum` it also sees the target patch's power
    spectrum.
    """
    m, scale = model_config, scales.scale(scale)
    crop = spectrum = 0
    if scale.whole_cube:
        side, channels = scale.side(config.pyramid), 1
    else:
        side = 2 * config.pyramid.patch
        channels = windows.critic_channels(scale.conditional, bool(m.critic_count_unit), config.lookahead(scale), NDIM)
        crop = config.pyramid.patch - m.critic_margin if m.critic_margin else 0
        spectrum = config.pyramid.patch if m.critic_spectrum else 0
    return _build_critic(side, channels, m.critic_filters, m.critic_strides, m.critic_dense,
                         architecture=m.architecture, kernel_sizes=m.kernel_sizes, activation=ACTIVATION,
                         ndim=NDIM, crop=crop, spectrum_side=spectrum, name=f"critic_{scale.name}")


def build_gan(config: Config, scale: str | Scale):
    """The (uncompiled) WGAN-GP model of `scale`; compile it with `build_optimizers(config.train)`."""
    from nbgan_app.gan.wgan_gp import WGANGP

    scale = scales.scale(scale)
    model_config = config.model(scale)
    counts = None
    count_weight = getattr(model_config, "count_weight", 0.0)
    spectrum_weight = getattr(model_config, "spectrum_weight", 0.0)
    second = any(config.second_stage_losses(scale))  # a second stage's losses read the same counts
    if not scale.whole_cube and (model_config.critic_count_unit or count_weight or spectrum_weight or second):
        counts = {**dataclasses.asdict(config.transform), "unit": model_config.critic_count_unit,
                  "weight": count_weight}
    return WGANGP(build_generator(model_config, scale, config), build_critic(model_config, scale, config),
                  coarse=None if scale.whole_cube else scale.conditional, whole_cube=scale.whole_cube,
                  num_critic_steps=config.train.num_critic_steps, gp_weight=config.train.gp_weight,
                  seed=config.train.seed, counts=counts, lookahead=config.lookahead(scale),
                  spectrum_weight=spectrum_weight,
                  name=f"wgan_gp_{scale.name}")


def build_optimizers(train: TrainConfig):
    """(critic optimizer, generator optimizer) from the train config (RMSprop by default).

    Adam takes the WGAN-GP paper's moments (beta_1 0.5, beta_2 0.9): a first
    moment that forgets fast, because the critic the generator chases moves.
    The generator's optimizer keeps the moving average of `train.generator_ema`
    (Keras's own `use_ema`; its averages are optimizer variables, so checkpoints
    restore them exactly). With `train.decay_steps` both learning rates fall
    linearly to 0 at that generator step; the critic's optimizer counts
    `num_critic_steps` updates per generator step, so its schedule is that many
    times longer. The schedules read the optimizers' own step counters, which
    checkpoints save, so a resumed run continues on the same schedule.
    """
    if train.optimizer == "adam":
        def optimizer(lr, name, **ema):
            return keras.optimizers.Adam(learning_rate=lr, beta_1=0.5, beta_2=0.9, name=name, **ema)
    else:
        def optimizer(lr, name, **ema):
            return keras.optimizers.RMSprop(learning_rate=lr, name=name, **ema)

    def make(lr, updates_per_step, name, **ema):
        if train.decay_steps:
            lr = keras.optimizers.schedules.PolynomialDecay(lr, train.decay_steps * updates_per_step,
                                                            end_learning_rate=0.0)
        return optimizer(lr, name, **ema)

    ema = dict(use_ema=True, ema_momentum=train.generator_ema) if train.generator_ema > 0 else {}
    return (make(train.critic_learning_rate, train.num_critic_steps, "critic_optimizer"),
            make(train.generator_learning_rate, 1, "generator_optimizer", **ema))
