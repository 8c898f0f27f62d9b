"""Whole particles inside a level-1 generator, in training as in sampling.

Voxels of level 1 hold whole particles, so the real windows a level-1 critic
sees take only the values forward(0), forward(1), forward(2), ... A generator
that writes expected counts is told apart by that alone, and when its
patches are rounded afterwards (`sampling.particles`) it is sampled from a
field it was never trained to make: the rounding adds variance it did not
plan for, and the patches it is conditioned on while sampling are whole
where the generator saw them as fractions.

`WholeParticles` rounds inside the model: x -> floor(x + u), the mean kept
(x = 2.3 becomes 3 with probability 0.3), with u = Phi(z) the standard normal
CDF of the voxel's own latent, so u is uniform on [0, 1) and a generator's
output is a function of its input (the same patch in training, in a sample
file and in memory, on every backend, with no random state in the model).
The gradient goes straight through (Bengio et al. 2013): the generator
learns the expected counts whose rounding looks like the data. In the
ablation this made M1 worse with either up-scaler (docs/quality.md), so no
shipped config uses it.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="nbgan")
class WholeParticles(layers.Layer):
    """[generator input (B, p..., C), y (B, p..., 1)] -> y rounded to whole particles (B, p..., 1), float32.

    The input's channel 0 is the latent (N(0, 1) per voxel); `y` is in transformed units. Negative
    expected counts count as 0.

    Args:
        kind, c, scale: the transform (`config.TransformConfig`).
    """

    def __init__(self, kind: str, c: float, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.c, self.scale = kind, float(c), float(scale)

    def call(self, inputs):
        from nbgan_app.transforms import backward_ops, forward_ops

        x, y = inputs
        y = ops.cast(y, "float32")
        u = 0.5 * (1.0 + ops.erf(ops.cast(x[..., :1], "float32") / math.sqrt(2.0)))
        counts = ops.maximum(backward_ops(y, self.kind, self.c, self.scale), 0.0)
        rounded = forward_ops(ops.floor(counts + ops.minimum(u, 1.0 - 1e-7)), self.kind, self.c, self.scale)
        return y + ops.stop_gradient(rounded - y)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "c": self.c, "scale": self.scale}
