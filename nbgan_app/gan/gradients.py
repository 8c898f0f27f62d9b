"""The one backend-specific piece of the WGAN-GP step: gradients, including double backprop.

Interface (same on every backend, picked by `keras.backend.backend()`):

- `value_and_grad(fn)`: `fn(params, *args) -> (value, aux)` with `params` a
  list of tensors and `value` a scalar; returns
  `wrapped(params, *args) -> ((value, aux), grads)`, grads a list like params.
- `input_gradient(fn, x)`: the gradient of `sum(fn(x))` with respect to `x`,
  itself differentiable with respect to whatever `fn` closes over (the
  critic's weights), which the gradient penalty needs.

TensorFlow: nested `GradientTape`s. JAX: `jax.value_and_grad`/`jax.grad`.
PyTorch: `torch.autograd.grad(create_graph=True)` (eager only: torch.compile
refuses double backward).
"""

from __future__ import annotations

import importlib

import keras

_MODULES = {"tensorflow": "gradients_tensorflow", "jax": "gradients_jax", "torch": "gradients_torch"}


def _impl():
    name = keras.backend.backend()
    if name not in _MODULES:
        raise ValueError(f"Expected a Keras backend in {', '.join(_MODULES)}. Received: backend={name!r}")
    return importlib.import_module(f"nbgan_app.gan.{_MODULES[name]}")


def value_and_grad(fn):
    """((value, aux), grads) of `fn(params, *args) -> (value, aux)` with respect to `params`."""
    return _impl().value_and_grad(fn)


def input_gradient(fn, x):
    """d sum(fn(x)) / dx, differentiable (for a penalty inside a loss)."""
    return _impl().input_gradient(fn, x)
