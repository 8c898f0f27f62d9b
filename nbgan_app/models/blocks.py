"""Convolution blocks shared by the generators and critics (channels last, 2-D or 3-D).

Inception block. Parallel convolutions with the kernel sides of
`kernel_sizes` (thesis 1, 3, 5; release 1, 2, 4), 'same' padding, outputs
concatenated along channels. How the `filters` of a block are shared:

- `merge=False` (the thesis, the default): the block's `filters` output
  channels are split among the branches as evenly as possible, the remainder
  going to the larger kernels; a branch left with 0 filters is dropped. So a
  block always outputs exactly `filters` channels (the thesis's critic ends at
  8x8x8x2 and its generators at 1 channel), and a 1-filter output layer is a
  single convolution with the largest kernel.
- `merge=True` (the release): every branch gets `filters` channels, and a
  1^d "merge" convolution brings the 3 x `filters` concatenation back to
  `filters`.

Residual stack (thesis fig. 5.3): after a first layer that sets the width,
the layers go in pairs, and a pair gets a skip addition
`x <- act(x + conv2(act(conv1(x))))` when both its strides are 1 and its
output width equals its input width (otherwise it is a plain pair).
Residual additions are used in generators only, as in the thesis.

Plain block (`dcgan`): one convolution with the largest kernel of
`kernel_sizes`.

Hidden activation: `activation` (a Keras activation name); the models use
"leaky_relu" (negative slope 0.2, Keras's default and the release's choice)
rather than the thesis's "relu", because dead ReLU units in a WGAN critic cut
the gradient the penalty relies on; "relu" is accepted for the thesis's exact
networks.
"""

from __future__ import annotations

from keras import layers

_CONV = {(2, False): layers.Conv2D, (3, False): layers.Conv3D,
         (2, True): layers.Conv2DTranspose, (3, True): layers.Conv3DTranspose}


def conv_layer(ndim: int, filters: int, kernel_size: int, strides: int = 1,
               transpose: bool = False, name: str | None = None, kernel_initializer="glorot_uniform"):
    """A 'same'-padded (transposed) convolution layer of rank `ndim` (2 or 3)."""
    if (ndim, transpose) not in _CONV:
        raise ValueError(f"Expected ndim 2 or 3. Received: ndim={ndim}")
    return _CONV[(ndim, transpose)](filters, kernel_size, strides=strides, padding="same", name=name,
                                    kernel_initializer=kernel_initializer)


def branch_filters(filters: int, num_branches: int) -> list[int]:
    """Filters per branch (smaller kernels first) summing to `filters`; remainder to the larger kernels."""
    base, extra = divmod(filters, num_branches)
    return [base + int(i >= num_branches - extra) for i in range(num_branches)]


def inception(x, filters: int, kernel_sizes=(1, 3, 5), strides: int = 1, transpose: bool = False,
              merge: bool = False, name: str = "inception"):
    """Inception block on x (B, s..., C) -> (B, s'..., filters); see the module docstring."""
    ndim = len(x.shape) - 2
    kernels = sorted(kernel_sizes)
    counts = [filters] * len(kernels) if merge else branch_filters(filters, len(kernels))
    branches = [conv_layer(ndim, n, k, strides, transpose, name=f"{name}_k{k}")(x)
                for n, k in zip(counts, kernels) if n > 0]
    y = branches[0] if len(branches) == 1 else layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    if merge:
        y = conv_layer(ndim, filters, 1, name=f"{name}_merge")(y)
    return y


def conv_block(x, filters: int, architecture: str, kernel_sizes=(1, 3, 5), strides: int = 1,
               transpose: bool = False, merge: bool = False, name: str = "conv"):
    """One layer of the given architecture (no activation): inception, or a plain conv for dcgan."""
    if architecture == "dcgan":
        return conv_layer(len(x.shape) - 2, filters, max(kernel_sizes), strides, transpose, name=name)(x)
    if architecture in ("inception", "inception_residual"):
        return inception(x, filters, kernel_sizes, strides, transpose, merge, name=name)
    raise ValueError("Expected architecture in dcgan, inception, inception_residual. "
                     f"Received: architecture={architecture!r}")


def conv_stack(x, filters, strides, architecture: str, kernel_sizes=(1, 3, 5), activation="leaky_relu",
               transpose: bool = False, residual: bool = False, merge: bool = False, name: str = "layer"):
    """Hidden layers `filters[i]`/`strides[i]`, each followed by `activation`, residual pairs if asked."""
    if len(filters) != len(strides):
        raise ValueError(f"Expected filters and strides of equal length. Received: filters={list(filters)}, "
                         f"strides={list(strides)}")

    def unit(h, i, act=True):
        h = conv_block(h, filters[i], architecture, kernel_sizes, strides[i], transpose, merge, name=f"{name}{i}")
        return layers.Activation(activation, name=f"{name}{i}_act")(h) if act else h

    i = 0
    while i < len(filters):
        pair = residual and 0 < i < len(filters) - 1
        if pair and strides[i] == strides[i + 1] == 1 and filters[i + 1] == x.shape[-1]:
            h = unit(unit(x, i), i + 1, act=False)
            x = layers.Activation(activation, name=f"{name}{i + 1}_res_act")(
                layers.Add(name=f"{name}{i + 1}_add")([x, h]))
            i += 2
        elif pair:
            x = unit(unit(x, i), i + 1)
            i += 2
        else:
            x = unit(x, i)
            i += 1
    return x
