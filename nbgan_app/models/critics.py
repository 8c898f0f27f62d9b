"""Critics: strided convolutions, flatten, dense layers, one unbounded score per sample.

M3's critic sees a whole coarsest cube (B, s^d, 1); the M2/M1 critic the
window with the up-sampled coarse window and the residual (B, (2p)^d, 3),
Mu's the bare window (B, (2p)^d, 1) - see `nbgan_app.windows.critic_input`.
A window critic may look at only the target patch and a margin of context
(`crop`: cells cut from each axis's low side, first thing in the network), so
that its convolutions spend themselves where real and fake windows differ. No
residual additions (the thesis keeps them to the generators); the
architecture picks inception or plain convolutions. With `spectrum_side` the
dense layers also see the log power spectrum of the target patch
(`models.spectrum.ShellPower`, as the released code's critics did). The score is a linear
Dense(1) in float32 (no activation: a Wasserstein critic).
"""

from __future__ import annotations

import keras
from keras import layers

from nbgan_app.models.blocks import conv_stack
from nbgan_app.models.spectrum import ShellPower


def build_critic(input_size: int, channels: int, filters, strides, dense_units,
                 architecture: str = "inception", kernel_sizes=(1, 3, 5), activation: str = "leaky_relu",
                 merge: bool = False, ndim: int = 3, crop: int = 0, spectrum_side: int = 0,
                 name: str = "critic") -> keras.Model:
    """Critic: (B, input_size^ndim, channels) -> (B, 1) scores; it sees the last input_size - crop cells per axis,
    and with `spectrum_side` s > 0 the power spectrum of channel 0's last s^ndim cells too."""
    x_in = keras.Input((input_size,) * ndim + (channels,), name="critic_input")
    arch = "inception" if architecture == "inception_residual" else architecture
    x = x_in
    if crop:
        cropping = {2: layers.Cropping2D, 3: layers.Cropping3D}[ndim]
        x = cropping(((crop, 0),) * ndim, name="focus")(x)
    x = conv_stack(x, filters, strides, arch, kernel_sizes, activation, merge=merge)
    x = layers.Flatten(name="flatten")(x)
    if spectrum_side:
        shells = ShellPower(spectrum_side, dtype="float32", name="shell_power")(x_in)
        x = layers.Concatenate(name="with_spectrum")([x, shells])
    for i, units in enumerate(dense_units):
        x = layers.Dense(units, name=f"dense{i}")(x)
        x = layers.Activation(activation, name=f"dense{i}_act")(x)
    score = layers.Dense(1, dtype="float32", name="score")(x)
    return keras.Model(x_in, score, name=name)
