"""Generators: M3 (latent code -> whole coarsest cube) and M2/M1/Mu (context -> target patch).

Tensors are channels last with a leading batch axis; `ndim` is the number of
spatial axes (3 for the thesis; 2 works through the same code for slices).
Values are in transformed space (the pyramid's point-wise count transform).
The last entry of `filters` is the output layer and must be 1 (one channel);
it has no hidden activation but `output_activation` (thesis "relu"; "linear"
as the release's M3), computed in float32 under mixed precision.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from nbgan_app.models.blocks import conv_block, conv_layer, conv_stack
from nbgan_app.models.ceiling import Ceiling
from nbgan_app.models.latent import HeavyTail, SmoothLatent
from nbgan_app.models.residual import ConsistentResidual, CountSplit
from nbgan_app.models.whole import WholeParticles

# The residual output's last convolution starts this small (std of its weights),
# so an untrained up-scaler returns nearly the up-sampled condition.
RESIDUAL_INIT_STD = 1e-3


def _check_output(filters, strides=None):
    if not filters or filters[-1] != 1:
        raise ValueError(f"Expected generator filters ending with 1 (one output channel). "
                         f"Received: filters={list(filters)}")
    if strides is not None and len(strides) != len(filters):
        raise ValueError(f"Expected filters and strides of equal length. Received: filters={list(filters)}, "
                         f"strides={list(strides)}")


def _output(x, architecture, kernel_sizes, strides, transpose, merge, output_activation, index):
    x = conv_block(x, 1, architecture, kernel_sizes, strides, transpose, merge, name=f"layer{index}")
    return layers.Activation(output_activation, dtype="float32", name="output")(x)


def build_cube_generator(latent_dim: int, cube_size: int, dense_units: int, initial_size: int,
                         filters, strides, architecture: str = "inception", kernel_sizes=(1, 3, 5),
                         activation: str = "leaky_relu", output_activation: str = "relu",
                         merge: bool = False, ndim: int = 3, latent_tail: float = 0.0,
                         name: str = "generator") -> keras.Model:
    """M3: z (B, latent_dim) ~ N(0, 1) -> cube (B, cube_size^ndim, 1).

    Dense(dense_units) -> reshape to initial_size^ndim x (dense_units / initial_size^ndim)
    channels (thesis: 64 -> 2x2x2x8) -> transposed convolutions `filters`/`strides`
    ('same' padding, so each multiplies the side by its stride). With `latent_tail` h > 0
    the dense layer sees z heavy-tailed (`models.latent.HeavyTail`).
    """
    _check_output(filters, strides)
    cells = initial_size**ndim
    if dense_units % cells:
        raise ValueError(f"Expected dense_units divisible by initial_size**{ndim} = {cells}. "
                         f"Received: dense_units={dense_units}")
    if initial_size * math.prod(strides) != cube_size:
        raise ValueError(f"Expected initial_size * prod(strides) == cube_size. Received: initial_size="
                         f"{initial_size}, strides={list(strides)}, cube_size={cube_size}")
    z = keras.Input((latent_dim,), name="latent")
    x = HeavyTail(latent_tail, name="heavy_tail")(z) if latent_tail else z
    x = layers.Dense(dense_units, name="dense")(x)
    x = layers.Activation(activation, name="dense_act")(x)
    x = layers.Reshape((initial_size,) * ndim + (dense_units // cells,), name="reshape")(x)
    x = conv_stack(x, filters[:-1], strides[:-1], architecture, kernel_sizes, activation, transpose=True,
                   residual=architecture == "inception_residual", merge=merge)
    out = _output(x, architecture, kernel_sizes, strides[-1], True, merge, output_activation, len(filters) - 1)
    return keras.Model(z, out, name=name)


def build_patch_generator(patch: int, context_channels: int, filters, architecture: str = "inception_residual",
                          kernel_sizes=(1, 3, 5), activation: str = "leaky_relu",
                          output_activation: str = "relu", merge: bool = False, ndim: int = 3,
                          residual_factor: int | None = None, residual_bound: float = 1.0, interpolate: bool = False,
                          split_transform: dict | None = None, ceiling: dict | None = None,
                          whole_transform: dict | None = None, latent_smoothing: int = 0, latent_tail: float = 0.0,
                          name: str = "generator") -> keras.Model:
    """M2/M1/Mu: [latent, context] (B, patch^ndim, 1 + context_channels) -> target (B, patch^ndim, 1).

    The input's channel 0 is the latent cube (N(0, 1) per voxel), the others
    the context of `nbgan_app.windows.split_window`. Stride-1 layers throughout.
    With `residual_factor` f (up-scalers only: the context's last channel is
    the up-sampled coarse target) the output is `models.residual`'s
    consistent residual with |r| < `residual_bound` (or, given `split_transform`,
    {"kind", "c", "scale"}, its count split: `models.residual.CountSplit`), starting
    from the linearly interpolated condition given `interpolate`, and
    `output_activation` is not used; otherwise the last layer goes through
    `output_activation`. Given `ceiling` ({"max_count"} and the transform's fields),
    no voxel exceeds the transform of max_count (`models.ceiling.Ceiling`). Given
    `whole_transform` (the transform's fields), the patch is then rounded to whole
    particles (`models.whole.WholeParticles`). With
    `latent_smoothing` w > 0 the layers see the latent smoothed over about w cells
    (`models.latent.SmoothLatent`), and with `latent_tail` h > 0 heavy-tailed, after any
    smoothing (`models.latent.HeavyTail`).
    """
    _check_output(filters)
    x_in = keras.Input((patch,) * ndim + (1 + context_channels,), name="latent_and_context")
    x = SmoothLatent(latent_smoothing, name="smooth_latent")(x_in) if latent_smoothing else x_in
    x = HeavyTail(latent_tail, first_channel=True, name="heavy_tail")(x) if latent_tail else x
    x = conv_stack(x, filters[:-1], [1] * (len(filters) - 1), architecture, kernel_sizes, activation,
                   residual=architecture == "inception_residual", merge=merge)
    if residual_factor is None:
        out = _output(x, architecture, kernel_sizes, 1, False, merge, output_activation, len(filters) - 1)
    else:
        small = keras.initializers.RandomNormal(stddev=RESIDUAL_INIT_STD)
        h = conv_layer(ndim, 1, max(kernel_sizes), name=f"layer{len(filters) - 1}", kernel_initializer=small)(x)
        if split_transform is None:
            out = ConsistentResidual(residual_factor, residual_bound, interpolate, dtype="float32",
                                     name="output")([x_in, h])
        else:
            out = CountSplit(residual_factor, residual_bound, **split_transform, interpolate=interpolate,
                             dtype="float32", name="output")([x_in, h])
    if ceiling is not None:
        out = Ceiling(**ceiling, dtype="float32", name="ceiling")(out)
    if whole_transform is not None:
        out = WholeParticles(**whole_transform, dtype="float32", name="whole_particles")([x_in, out])
    return keras.Model(x_in, out, name=name)
