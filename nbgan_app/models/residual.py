"""The consistent residual output of the up-scalers (M2, M1).

The pyramid defines a coarse voxel as the mean of its f^d fine voxels in
transformed space, so a fine patch is consistent with its condition exactly
when its block means equal the up-sampled coarse patch. The residual output
makes that hold by construction:

    out = up(coarse) + r - up(blockmean(r)),   r = bound * tanh(h / bound)

where `h` is the network's last convolution. The generator only chooses how
mass is spread inside each coarse voxel; the large scales it is given pass
through untouched, however early in training. `r` is bounded (a blow-up in
transformed space is exponential in counts) and near-linear for small `h`,
and the last convolution starts small, so an untrained up-scaler is close to
the constant-kernel up-sampling of its condition.

With `interpolate`, both start from the condition interpolated linearly
between coarse-voxel centres instead of copied into each block, corrected so
that every block keeps its coarse value (additively in transformed space for
the residual, multiplicatively in counts for the split). A copied condition
lacks power well below the coarse Nyquist frequency (the block's window: on
the demo's validation boxes a copied level 2 is 13% low at k = 0.27 h/Mpc and
38% at 0.51), which the network must otherwise learn to restore from
sub-block gradients; interpolation restores part of it (5% and 24%). The
patch sees only its own coarse voxels, so the outermost fine voxels take the
edge voxel's value on the far side.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="nbgan")
class ConsistentResidual(layers.Layer):
    """[generator input (B, p..., C), h (B, p..., 1)] -> consistent fine patch (B, p..., 1), float32.

    The input's last channel is the up-sampled coarse target (the order of
    `windows.split_window`).

    Args:
        factor: fine/coarse side ratio f (the block side).
        bound: |r| < bound, in transformed units.
        interpolate: start from the linearly interpolated condition (block means kept), not the copy.
    """

    def __init__(self, factor: int, bound: float, interpolate: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.bound, self.interpolate = int(factor), float(bound), bool(interpolate)

    def call(self, inputs):
        x, h = inputs
        up, h = ops.cast(x[..., -1:], "float32"), ops.cast(h, "float32")
        if self.interpolate:
            smooth = _linear_up(up, self.factor)
            up = up + smooth - _block_mean_up(smooth, self.factor)
        r = self.bound * ops.tanh(h / self.bound)
        return up + r - _block_mean_up(r, self.factor)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "bound": self.bound,
                "interpolate": self.interpolate}


@keras.saving.register_keras_serializable(package="nbgan")
class CountSplit(layers.Layer):
    """[generator input (B, p..., C), h (B, p..., 1)] -> fine patch (B, p..., 1) that splits each coarse
    voxel's particles among its f^d fine voxels, float32.

    For a pyramid averaged in count space (`pyramid.mean = "counts"`): with n the coarse voxel's mean
    count (the backward transform of the up-sampled condition, the input's last channel),

        counts = n * w / blockmean(w),   w = exp(bound * tanh(h / bound)),   out = forward(counts)

    so each block holds exactly the coarse voxel's particles, however the network is trained: the
    large scales pass through in counts, not only in transformed space (where a residual's spread
    inflates the count-space mean). No fine voxel exceeds f^d n, the whole block's particles. An
    untrained split (h near 0) spreads n evenly: the up-sampled condition.

    With `interpolate` the weights are w times the linearly interpolated mean counts (plus a tiny
    floor, so that a block of empty coarse neighbours still divides), and an untrained split gives the
    interpolation scaled to each block's particles.

    Args:
        factor: fine/coarse side ratio f (the block side).
        bound: |log w| < bound.
        kind, c, scale: the transform (`config.TransformConfig`).
        interpolate: weight by the linearly interpolated condition, not evenly.
    """

    def __init__(self, factor: int, bound: float, kind: str, c: float, scale: float, interpolate: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.factor, self.bound, self.interpolate = int(factor), float(bound), bool(interpolate)
        self.kind, self.c, self.scale = kind, float(c), float(scale)

    def call(self, inputs):
        from nbgan_app.transforms import backward_ops, forward_ops

        x, h = inputs
        up, h = ops.cast(x[..., -1:], "float32"), ops.cast(h, "float32")
        mean = backward_ops(up, self.kind, self.c, self.scale)
        w = ops.exp(self.bound * ops.tanh(h / self.bound))
        if self.interpolate:
            w = w * (_linear_up(mean, self.factor) + 1e-6)
        return forward_ops(mean * w / _block_mean_up(w, self.factor), self.kind, self.c, self.scale)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "bound": self.bound, "kind": self.kind,
                "c": self.c, "scale": self.scale, "interpolate": self.interpolate}


def _block_mean_up(x, factor: int):
    """Each voxel replaced by the mean of its factor^d block (spatial axes 1..d, channels last)."""
    mean = ops.average_pool(x, factor, strides=factor, padding="valid")
    for axis in range(1, len(x.shape) - 1):
        mean = ops.repeat(mean, factor, axis=axis)
    return mean


def _linear_up(up, factor: int):
    """A block-constant patch (each coarse value copied into its factor^d block) interpolated linearly
    between the coarse voxels' centres instead, axis by axis; beyond the patch's first and last coarse
    voxels the edge value is held (the patch knows nothing further out)."""
    coarse = ops.average_pool(up, factor, strides=factor, padding="valid")
    # a fine voxel's centre sits (j + 1/2)/f - 1/2 coarse voxels from its coarse voxel's centre
    offsets = [(j + 0.5) / factor - 0.5 for j in range(factor)]
    for axis in range(1, len(up.shape) - 1):
        n = coarse.shape[axis]
        before = ops.take(coarse, [max(i - 1, 0) for i in range(n)], axis=axis)
        after = ops.take(coarse, [min(i + 1, n - 1) for i in range(n)], axis=axis)
        parts = [coarse + max(-t, 0.0) * (before - coarse) + max(t, 0.0) * (after - coarse) for t in offsets]
        shape = list(coarse.shape)
        shape[0], shape[axis] = -1, n * factor
        coarse = ops.reshape(ops.stack(parts, axis=axis + 1), shape)
    return coarse
