"""The power spectrum of a critic's target patch, as features beside its convolutions.

The released code fed its M1 and M3 critics power-spectrum shell sums; the
thesis's critics see only convolutions. A small convolutional critic that
strides from its first layer tells a window's texture poorly from one cell to
the next, and the demo's up-scalers miss the boxes' power spectrum in a way
such a critic hardly sees: 20-30% short between k = 0.6 and 1.2 h/Mpc and in
excess near the Nyquist frequency (docs/quality.md).

`ShellPower` takes the last `side` cells per axis of the input's channel 0
(the window's target patch, transformed values; a whole cube where `side` is
its side), computes its discrete Fourier transform with cosine and sine
matrices (real matrix products, which every backend differentiates twice for
the penalty without complex dtypes), and returns
log(EPS + mean |F|^2 / side^d) over each shell of integer |k| in units of the
patch's fundamental, from 1 to the corner of the Fourier cube (the mean mode
k = 0 is left out): 14 shells for a 16^3 patch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

# Added to each shell's power before the log. The demo's training patches' shell means are 0.12 to 9.6
# (transformed units, 16^3), and an untrained up-scaler's copied blocks have next to none in the
# highest shells: there the log's gradient is 1 / (power + EPS). With 1e-4 the residual M1 was at
# its bound by step 500 (mean counts x258), as gradients that large would explain, so EPS now sits a
# tenth below the data's smallest shell mean.
EPS = 1e-2


def shell_matrix(side: int, ndim: int) -> np.ndarray:
    """(side^ndim, n_shells) float32: column j averages |F|^2 over the modes with round(|k|) = j + 1,
    |k| in fundamentals with FFT frequency order along each axis (the flattening order of C-order)."""
    freqs = np.fft.fftfreq(side, 1.0 / side)
    grid = np.meshgrid(*[freqs] * ndim, indexing="ij")
    shell = np.rint(np.sqrt(sum(g**2 for g in grid))).astype(int).ravel()
    n_shells = int(shell.max())
    matrix = np.zeros((side**ndim, n_shells), np.float64)
    for j in range(1, n_shells + 1):
        members = shell == j
        matrix[members, j - 1] = 1.0 / members.sum()
    return matrix.astype(np.float32)


def dft_matrices(side: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) (side, side) float32 with [k, x] = cos / sin(2 pi k x / side)."""
    phase = 2.0 * np.pi * np.outer(np.arange(side), np.arange(side)) / side
    return np.cos(phase).astype(np.float32), np.sin(phase).astype(np.float32)


@keras.saving.register_keras_serializable(package="nbgan")
class ShellPower(layers.Layer):
    """(B, s..., C) -> (B, n_shells) log shell-averaged power of channel 0's last `side` cells per axis, float32.

    Args:
        side: the patch side whose spectrum is taken (the last `side` cells of each spatial axis).
    """

    def __init__(self, side: int, **kwargs):
        super().__init__(**kwargs)
        self.side = int(side)

    def build(self, input_shape):
        self.ndim = len(input_shape) - 2
        cos, sin = dft_matrices(self.side)
        # constants made once (a host copy per step on a GPU otherwise)
        self._cos, self._sin = ops.convert_to_tensor(cos), ops.convert_to_tensor(sin)
        self._shells = ops.convert_to_tensor(shell_matrix(self.side, self.ndim))

    def _along(self, matrix, x, axis: int):
        """matrix (k, x) applied along spatial `axis` (1-based) of x (B, s...)."""
        x = ops.moveaxis(x, axis, -1)
        x = ops.matmul(x, ops.transpose(matrix))
        return ops.moveaxis(x, -1, axis)

    def call(self, x):
        x = ops.cast(x, "float32")
        patch = x[(slice(None),) + (slice(-self.side, None),) * self.ndim + (0,)]
        real, imag = patch, None
        for axis in range(1, self.ndim + 1):
            # (cos - i sin)(real + i imag) along this axis
            if imag is None:
                real, imag = self._along(self._cos, real, axis), -self._along(self._sin, real, axis)
            else:
                real, imag = (self._along(self._cos, real, axis) + self._along(self._sin, imag, axis),
                              self._along(self._cos, imag, axis) - self._along(self._sin, real, axis))
        power = ops.reshape(real * real + imag * imag, (-1, self.side**self.ndim)) / float(self.side**self.ndim)
        return ops.log(ops.matmul(power, self._shells) + EPS)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], shell_matrix(self.side, len(input_shape) - 2).shape[1])

    def get_config(self):
        return {**super().get_config(), "side": self.side}
