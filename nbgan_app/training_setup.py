"""What a training call builds before its loop: the backend's name, whether its step is compiled, a
precision warning, the scale's level cubes, its batches and its compiled GAN (`training.train` uses
them; the train-step benchmark and the tests build the same pieces)."""

from __future__ import annotations

import numpy as np

from nbgan_app import scales
from nbgan_app.config import Config
from nbgan_app.errors import InputError


def backend_name() -> str:
    import keras

    return keras.backend.backend()


def use_jit(config: Config) -> bool:
    """Resolve train.jit_compile. 'auto': JAX always compiles; torch stays eager (double
    backward refuses torch.compile); TensorFlow uses XLA on a GPU, and the plain
    tf.function graph (oneDNN) on a CPU, where XLA measured slower (the full `nbgan bench` times
    both)."""
    setting = config.train.jit_compile
    backend = backend_name()
    if setting == "on":
        if backend == "torch":
            raise InputError("train.jit_compile: 'on' is not possible on the torch backend "
                             "(torch.compile refuses the penalty's double backward)")
        return True
    if setting == "off":
        return False
    if backend == "jax":
        return True
    if backend == "tensorflow":
        from nbgan_app.devices import accelerator_visible

        return accelerator_visible()
    return False


def precision_warning(config: Config) -> str | None:
    """A warning where `mixed_bfloat16` would train on a CPU without bfloat16 instructions, else None.

    There bfloat16 is emulated: on an AVX2 EPYC a demo M1 train step took 91 s in `mixed_bfloat16`
    and 1.9 s in float32 (BENCHMARKS.md). On a GPU, or a CPU with AVX512_BF16 or AMX, it is the faster one.
    """
    from nbgan_app import devices

    if config.train.precision != "mixed_bfloat16" or devices.cpu_runs_bf16() is not False:
        return None
    if devices.accelerator_visible():
        return None
    return ("warning: train.precision = mixed_bfloat16 on a CPU without bfloat16 instructions and no GPU: "
            "it is emulated there, many times slower than float32")


def scale_levels(config: Config, scale: str, counts: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Transformed cubes at the scale's level (N, S, S, S) float32: `pyramid.level_of` at the scale's side.

    With `inplace`, the finest level overwrites `counts` (float32) instead of copying it.
    """
    from nbgan_app.pyramid import level_of

    return level_of(config, counts, config.level_size(scale), inplace=inplace)


def make_batches(config: Config, scale: str, levels: np.ndarray, first_step: int, steps: int):
    """The scale's `TrainingBatches` of `levels` for generator steps first_step .. first_step + steps - 1."""
    from nbgan_app.training_data import TrainingBatches

    scale = scales.scale(scale)
    return TrainingBatches(
        levels,
        batch_size=config.train.batch_size,
        num_critic_steps=config.train.num_critic_steps,
        patch=None if scale.whole_cube else config.pyramid.patch,
        factor=scale.factor(config.pyramid),
        seed=config.train.seed,
        steps=steps,
        first_step=first_step,
        count_transform=config.transform if config.pyramid.mean == "counts" else None,
        lookahead=config.lookahead(scale),
    )


def build_compiled_gan(config: Config, scale: str):
    """The scale's WGAN-GP, compiled with its optimizers (their slots already built)."""
    import keras

    from nbgan_app.models.factory import build_gan, build_optimizers

    keras.mixed_precision.set_global_policy(config.train.precision)
    keras.utils.set_random_seed(config.train.seed)  # initial weights are a function of the seed
    gan = build_gan(config, scale)
    d_optimizer, g_optimizer = build_optimizers(config.train)
    gan.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, jit_compile=use_jit(config))
    return gan
