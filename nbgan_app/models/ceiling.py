"""The densest cell a patch generator may write, in training as in sampling.

The residual up-scaler bounds each cell's departure from its block's coarse
value (`models.residual`), not the cell itself: at a bound of 6 transformed
units a block of a few hundred particles may hold a cell e^6 = 400 times
denser. A handful of such cells, in millions, lift every bin of the power
spectrum with white power while the mass and peak histograms (medians over
bins) and the mean count barely move, and eight monitor cubes may hold none
of them (docs/quality.md, "the cells the monitor misses"). `Ceiling` caps
every output voxel at the transform of a count, the densest cell of the
training suite, so the critic is shown the cubes that will be sampled.

The cap's value is hard (a minimum): below it the output is untouched. Its
gradient goes straight through (Bengio et al. 2013), as if there were no cap.
With the gradient of a minimum instead, zero above the cap, a capped voxel
tells the generator nothing, and the critic's verdict on it is lost; straight
through, that verdict moves the network's value below the cap. The cap
breaks a residual patch's block means only in the capped voxels.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from nbgan_app.config import TransformConfig
from nbgan_app.transforms import forward


@keras.saving.register_keras_serializable(package="nbgan")
class Ceiling(layers.Layer):
    """y (B, p..., 1) in transformed units -> min(y, forward(max_count)), float32, with the gradient of y.

    Args:
        max_count: the most particles a voxel may hold (> 0).
        kind, c, scale: the transform (`config.TransformConfig`).
    """

    def __init__(self, max_count: float, kind: str, c: float, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.max_count, self.kind, self.c, self.scale = float(max_count), kind, float(c), float(scale)
        # a constant of the layer: computed once here, not on every call
        self._top = float(forward(np.array(self.max_count), TransformConfig(kind, self.c, self.scale)))

    def call(self, y):
        y = ops.cast(y, "float32")
        return y + ops.stop_gradient(ops.minimum(y, self._top) - y)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_count": self.max_count, "kind": self.kind, "c": self.c,
                "scale": self.scale}
