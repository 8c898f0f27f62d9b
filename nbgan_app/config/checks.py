"""A parsed config checked for sense: the value checks its types cannot express.

Every float is finite (the loader refuses TOML's nan and inf); sizes, counts,
filters, strides, learning rates and the penalty weight are positive, seeds
non-negative; sizes agree across sections. The in-training evaluation scores
against the held-out cubes, and a score compares at least 2 real cubes with at
least 2 samples: `train.eval_samples` is at least 2, and `data.held_out = 0`
turns the evaluation off. Each check raises `InputError` naming the key.
"""

from __future__ import annotations

from nbgan_app import scales
from nbgan_app.config.sections import ARCHITECTURES, Config, TrainConfig
from nbgan_app.errors import InputError


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{key}: expected one of {', '.join(choices)}. Received: {value!r}")


def _positive(key: str, value) -> None:
    if not value > 0:
        raise InputError(f"{key}: expected > 0. Received: {value}")


def _all_positive(key: str, values: tuple, allow_empty: bool = True) -> None:
    if not values and not allow_empty:
        raise InputError(f"{key}: expected at least one value. Received: []")
    for i, value in enumerate(values):
        if not value > 0:
            raise InputError(f"{key}[{i}]: expected > 0. Received: {value}")


def _check_losses_start(config: Config, scale: scales.Scale, name: str, model) -> None:
    """`refine_losses_at`: 0 (the losses from the switch), or a checkpoint step after `refine_at` of a
    second stage that has losses; on a checkpoint boundary so that a resume there sets them as an
    uninterrupted run does (`nbgan_app.refine`)."""
    at = model.refine_losses_at
    if not at:
        return
    if not any(config.second_stage_losses(scale)):
        raise InputError(f"{name}.refine_losses_at starts the second stage's losses; {name}.refine_count_weight "
                         f"and refine_spectrum_weight are 0")
    if at <= model.refine_at or at % config.train.checkpoint_every:
        raise InputError(f"{name}.refine_losses_at: expected a multiple of train.checkpoint_every "
                         f"{config.train.checkpoint_every} after {name}.refine_at {model.refine_at}, or 0 for the "
                         f"losses from the switch. Received: {at}")


def _check_monitor_boxes(config: Config, name: str, model) -> None:
    """`monitor_boxes`: 0 (the held-out cubes), or at least 2 fresh boxes (a score compares at least 2 real
    cubes) of a config that simulates its data."""
    n = model.monitor_boxes
    if n < 0 or n == 1:
        raise InputError(f"{name}.monitor_boxes: expected 0 (the held-out cubes) or at least 2 fresh boxes. "
                         f"Received: {n}")
    if n and config.data.simulation is None:
        raise InputError(f"{name}.monitor_boxes: fresh monitor boxes are simulated; give a [data.simulation] "
                         f"or set {name}.monitor_boxes = 0")


def _check_evaluation(config: Config) -> None:
    """The in-training evaluation's counts: a score compares >= 2 real with >= 2 generated cubes."""
    if config.train.eval_samples < 2:
        raise InputError(f"train.eval_samples: expected >= 2 (a score compares at least 2 samples). "
                         f"Received: {config.train.eval_samples}")


def _check_second_stage(config: Config, name: str, model) -> None:
    """`refine_at`: a step on a checkpoint boundary (the switch is checkpointed there, so that a resume is
    exact); `refine_rate`: a factor in (0, 1), below 1 so that the rates themselves say whether a restored
    run has switched (`nbgan_app.refine`); not with `train.decay_steps`, whose schedules own the rates."""
    if model.refine_at < 0:
        raise InputError(f"{name}.refine_at: expected the generator step of the second stage, or 0 for none. "
                         f"Received: {model.refine_at}")
    if not 0 < model.refine_rate < 1:
        raise InputError(f"{name}.refine_rate: expected a factor of the learning rates in (0, 1). "
                         f"Received: {model.refine_rate}")
    if model.refine_eval_every < 0:
        raise InputError(f"{name}.refine_eval_every: expected the monitor's spacing in the second stage, in "
                         f"generator steps, or 0 for train.eval_every. Received: {model.refine_eval_every}")
    if not model.refine_at:
        if model.refine_eval_every:
            raise InputError(f"{name}.refine_eval_every spaces the monitor in a second stage; set "
                             f"{name}.refine_at to plan one")
        return
    if model.refine_at % config.train.checkpoint_every:
        raise InputError(f"{name}.refine_at: {model.refine_at} is not a multiple of train.checkpoint_every "
                         f"{config.train.checkpoint_every} (the switch is checkpointed)")
    if config.train.decay_steps:
        raise InputError(f"{name}.refine_at: a second stage sets the learning rates, and train.decay_steps "
                         f"({config.train.decay_steps}) schedules them; use one of the two")


def _check_models(config: Config) -> None:
    for scale in scales.ALL:
        name, model = scale.section, config.model(scale)
        _check_choice(f"{name}.architecture", model.architecture, ARCHITECTURES)
        _all_positive(f"{name}.generator_filters", model.generator_filters, allow_empty=False)
        _all_positive(f"{name}.kernel_sizes", model.kernel_sizes, allow_empty=False)
        for key in ("critic_filters", "critic_strides", "critic_dense"):
            _all_positive(f"{name}.{key}", getattr(model, key))
        if len(model.critic_filters) != len(model.critic_strides):
            raise InputError(f"{name}.critic_filters and {name}.critic_strides differ in length")
        _check_monitor_boxes(config, name, model)
        if not scale.whole_cube and not 0 <= model.critic_margin <= config.pyramid.patch:
            raise InputError(f"{name}.critic_margin: expected 0 to the patch side {config.pyramid.patch} "
                             f"(0 = the whole window). Received: {model.critic_margin}")
        if not scale.whole_cube and model.critic_count_unit < 0:
            raise InputError(f"{name}.critic_count_unit: expected particles per unit > 0, or 0 for no count "
                             f"channel. Received: {model.critic_count_unit}")
        if not 0 <= model.latent_tail < 0.5:
            raise InputError(f"{name}.latent_tail: expected Tukey's h in [0, 0.5) (0: a Gaussian latent; the "
                             f"variance is infinite from 0.5). Received: {model.latent_tail}")
        _check_second_stage(config, name, model)
        if not scale.whole_cube and not 0 <= 2 * model.latent_smoothing < config.pyramid.patch:
            raise InputError(f"{name}.latent_smoothing: expected a half-width in cells from 0 (none) to below "
                             f"half the patch side {config.pyramid.patch}. Received: {model.latent_smoothing}")
        if not scale.whole_cube and model.max_count < 0:
            raise InputError(f"{name}.max_count: expected the most particles a voxel may hold, > 0, or 0 for "
                             f"no cap. Received: {model.max_count}")
        if not scale.whole_cube and model.whole_particles and scale.level != 1:
            raise InputError(f"{name}.whole_particles rounds level 1 to whole particles; {scale.title} makes "
                             f"level {scale.level}, whose voxels hold block means")
        if scale.conditional:
            _check_choice(f"{name}.upscaler", model.upscaler, ("direct", "residual", "split"))
            if model.residual_bound < 0:
                raise InputError(f"{name}.residual_bound: expected a bound >= 0 in transformed units "
                                 f"(0 = the transform of c). Received: {model.residual_bound}")
            for key, what in (("count_weight", "count"), ("spectrum_weight", "spectrum")):
                for prefix in ("", "refine_"):
                    if getattr(model, prefix + key) < 0:
                        raise InputError(f"{name}.{prefix}{key}: expected a loss weight >= 0 (0 = no {what} "
                                         f"loss). Received: {getattr(model, prefix + key)}")
            if any(config.second_stage_losses(scale)) and not model.refine_at:
                raise InputError(f"{name}.refine_count_weight and refine_spectrum_weight weigh the losses of a "
                                 f"second stage; set {name}.refine_at to plan one")
            _check_losses_start(config, scale, name, model)
            if model.residual_bound and model.upscaler == "direct":
                raise InputError(f"{name}.residual_bound bounds the residual up-scaler's output; "
                                 f"{name}.upscaler is {model.upscaler!r}")
            if model.interpolate_condition and model.upscaler == "direct":
                raise InputError(f"{name}.interpolate_condition sets where the residual or split up-scaler "
                                 f"starts; {name}.upscaler is {model.upscaler!r}")
            if model.upscaler == "split" and config.pyramid.mean != "counts":
                raise InputError(f"{name}.upscaler = \"split\" conserves counts, so it needs pyramid.mean = "
                                 f"\"counts\" (pyramid.mean is {config.pyramid.mean!r})")
    m3 = config.m3
    for key in ("latent_dim", "dense_units", "initial_size"):
        _positive(f"m3.{key}", getattr(m3, key))
    _all_positive("m3.generator_strides", m3.generator_strides)
    if len(m3.generator_strides) != len(m3.generator_filters):
        raise InputError("m3.generator_strides and m3.generator_filters differ in length")
    side = m3.initial_size
    for s in m3.generator_strides:
        side *= s
    if side != config.pyramid.sizes[-1]:
        raise InputError(f"m3.generator_strides: initial_size {m3.initial_size} times the strides gives "
                         f"{side}, not pyramid.sizes[-1] {config.pyramid.sizes[-1]}")


def _check_train(train: TrainConfig) -> None:
    _check_choice("train.precision", train.precision, ("float32", "mixed_bfloat16", "mixed_float16"))
    _check_choice("train.jit_compile", train.jit_compile, ("auto", "on", "off"))
    _check_choice("train.optimizer", train.optimizer, ("rmsprop", "adam"))
    if not 0.0 <= train.generator_ema < 1.0:
        raise InputError(f"train.generator_ema: expected a momentum in [0, 1). Received: {train.generator_ema}")
    for key in ("steps", "batch_size", "num_critic_steps", "log_every", "eval_every", "checkpoint_every",
                "generator_learning_rate", "critic_learning_rate", "gp_weight"):
        _positive(f"train.{key}", getattr(train, key))
    if train.seed < 0:
        raise InputError(f"train.seed: expected >= 0. Received: {train.seed}")
    if not train.best_count_tolerance >= 0:
        raise InputError(f"train.best_count_tolerance: expected a fraction >= 0 (0: no guard). "
                         f"Received: {train.best_count_tolerance}")
    if train.decay_steps < 0:
        raise InputError(f"train.decay_steps: expected generator steps to decay over, or 0 for constant "
                         f"learning rates. Received: {train.decay_steps}")
    for key in ("eval_every", "checkpoint_every"):
        # logged losses are means over log intervals; these must fall on their boundaries
        if getattr(train, key) % train.log_every:
            raise InputError(f"train.{key}: {getattr(train, key)} is not a multiple of train.log_every "
                             f"{train.log_every}")


def validate(config: Config, saved: bool = False) -> Config:
    """Check values and cross-field consistency; raise InputError naming the first bad key.

    `saved`: the config a run directory recorded. It skips the evaluation
    counts (`data.held_out`, `train.eval_samples`), which only a new training
    run needs, so a run trained before those rules can still be sampled.
    """
    data, pyr = config.data, config.pyramid
    if (data.dir is None) == (data.simulation is None):
        raise InputError("data: give exactly one of data.dir and [data.simulation]")
    if data.held_out < 0:
        raise InputError(f"data.held_out: expected >= 0. Received: {data.held_out}")
    if data.box_size is not None:
        _positive("data.box_size", data.box_size)
    if data.simulation is not None:
        from nbgan_app.simulate import check_simulation  # here: simulate imports this module

        try:
            check_simulation(data.simulation)
        except InputError as exc:  # its keys are `simulation.<key>`, the [data.simulation] table's
            raise InputError(f"data.{exc}") from None
    _check_choice("transform.kind", config.transform.kind, ("thesis", "released"))
    if config.transform.c <= 0 or config.transform.scale <= 0:
        raise InputError("transform.c and transform.scale must be positive")
    sizes = pyr.sizes
    if len(sizes) != 3:
        raise InputError(f"pyramid.sizes: expected 3 sides (I1, I2, I3). Received: {list(sizes)}")
    _all_positive("pyramid.sizes", sizes)
    _positive("pyramid.patch", pyr.patch)
    _check_choice("pyramid.mean", pyr.mean, ("transformed", "counts"))
    for fine, coarse in zip(sizes, sizes[1:]):
        if fine % coarse or fine <= coarse:
            raise InputError(f"pyramid.sizes: {coarse} must divide {fine} and be smaller")
    for side in sizes[:2]:
        if side % pyr.patch:
            raise InputError(f"pyramid.patch: {pyr.patch} does not divide the level side {side}")
    for scale in scales.UPSCALERS:
        if pyr.patch % scale.factor(pyr):
            raise InputError(f"pyramid.patch: {pyr.patch} is not divisible by the scale-{scale} "
                             f"down-scaling factor {scale.factor(pyr)}")
    if data.simulation is not None and data.simulation.grid != sizes[0]:
        raise InputError(f"data.simulation.grid: {data.simulation.grid} differs from pyramid.sizes[0] {sizes[0]}")
    _check_models(config)
    _check_train(config.train)
    if not saved:
        _check_evaluation(config)
    _check_choice("sample.order", config.sample.order, ("wavefront", "raster"))
    _check_choice("sample.counts", config.sample.counts, ("whole", "expected"))
    _positive("sample.max_batch", config.sample.max_batch)
    for key in ("steps_m3", "steps_m2", "steps_m1", "steps_mu", "samples"):
        if getattr(config.demo, key) <= 0:
            raise InputError(f"demo.{key}: expected > 0. Received: {getattr(config.demo, key)}")
    scales_ = config.demo.m3_latent_scales
    if any(v <= 0 for v in scales_) or len(set(scales_)) != len(scales_):
        raise InputError(f"demo.m3_latent_scales: expected distinct numbers > 0. Received: {list(scales_)}")
    return config
