"""What a generator's layers see of its latent: smoothed (patch generators) or heavy-tailed (any).

The latent a generator is given stays N(0, 1) per number (`sampling.noise`);
these layers change only the network's view of it, so draws, keys and the
sampling contract are the same with or without them.

Smoothing (M2, M1, Mu).

The latent a patch generator is given is white: one N(0, 1) draw per voxel
(`sampling.noise`). An up-scaler that turns it into structure keeps its grain,
one cell across, where N-body cells cluster over several (docs/quality.md: the
shipped M1's power above k = 2 h/Mpc is all its noise's). `SmoothLatent`
blurs the latent inside the model with a binomial kernel of 2w + 1 cells per
axis (w = `latent_smoothing`; w = 2 has a standard deviation of one cell),
zero beyond the patch, and rescales each voxel to unit variance, so the noise
stays N(0, 1) per voxel but correlated over about w cells. In the ablation the residual M1 came apart sooner with it, and the count split
halved its peak error (docs/quality.md); no shipped config uses it yet.

Heavy tails (any scale). Dense cells are rarer than a Gaussian latent's
extremes make them easy to reach: every shipped model makes too few of them
(docs/quality.md). `HeavyTail` passes the latent through Tukey's h transform,
z exp(h z^2 / 2), scaled back to unit variance ((1 - 2h)^(3/4); finite for
h < 1/2): monotonic, so no information is lost, with the body narrowed and the
tails stretched (h = 0.2: a 3-sigma draw becomes 5.0 sigma).
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
from keras import layers, ops


def binomial_kernel(half_width: int) -> np.ndarray:
    """The normalised binomial kernel C(2w, i) / 4^w, i = 0..2w (float64)."""
    n = 2 * half_width
    return np.array([math.comb(n, i) for i in range(n + 1)], np.float64) / 4.0 ** half_width


@keras.saving.register_keras_serializable(package="nbgan")
class SmoothLatent(layers.Layer):
    """(B, p..., C) generator input -> the same with channel 0 (the latent) smoothed, float32.

    Args:
        half_width: w, the kernel's half-width in cells (>= 1).
    """

    def __init__(self, half_width: int, **kwargs):
        super().__init__(**kwargs)
        self.half_width = int(half_width)

    def build(self, input_shape):
        ndim, side = len(input_shape) - 2, int(input_shape[1])
        kernel = binomial_kernel(self.half_width)
        # the variance of the smoothed white noise at each voxel, zero beyond the patch: per axis,
        # the sum of the squared kernel weights that fall inside; 1 / its root makes every voxel N(0, 1)
        scale = 1.0 / np.sqrt(np.convolve(np.ones(side), kernel ** 2, mode="same"))
        grid = functools.reduce(np.multiply.outer, [scale] * ndim)
        # constants made once, not converted from NumPy at every call (a host copy per step on a GPU)
        self._scale = ops.convert_to_tensor(grid[None, ..., None].astype(np.float32))
        self._kernels = [ops.convert_to_tensor(kernel.reshape((1,) * axis + (kernel.size,) + (1,) * (ndim - 1 - axis)
                                                              + (1, 1)).astype(np.float32)) for axis in range(ndim)]

    def call(self, x):
        x = ops.cast(x, "float32")
        z = x[..., :1]
        for kernel in self._kernels:
            z = ops.conv(z, kernel, strides=1, padding="same")
        return ops.concatenate([z * self._scale, x[..., 1:]], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "half_width": self.half_width}


def tukey_h_scale(h: float) -> float:
    """1 / the standard deviation of z exp(h z^2 / 2) for z ~ N(0, 1): (1 - 2h)^(3/4), h in [0, 1/2)."""
    return (1.0 - 2.0 * h) ** 0.75


@keras.saving.register_keras_serializable(package="nbgan")
class HeavyTail(layers.Layer):
    """Latent -> its Tukey-h transform at unit variance, float32: the whole input (M3's latent vector), or
    its channel 0 only (a patch generator's latent; the context channels pass untouched).

    Args:
        h: the tail weight, 0 <= h < 1/2 (0: the identity).
        first_channel: transform channel 0 only.
    """

    def __init__(self, h: float, first_channel: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.h, self.first_channel = float(h), bool(first_channel)

    def call(self, x):
        x = ops.cast(x, "float32")
        z = x[..., :1] if self.first_channel else x
        z = z * ops.exp(0.5 * self.h * ops.square(z)) * tukey_h_scale(self.h)
        return ops.concatenate([z, x[..., 1:]], axis=-1) if self.first_channel else z

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "h": self.h, "first_channel": self.first_channel}
