"""Gradients on JAX: jax.value_and_grad over the stateless loss, jax.grad inside it for the penalty."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def value_and_grad(fn):
    return jax.value_and_grad(fn, has_aux=True)


def input_gradient(fn, x):
    return jax.grad(lambda inputs: jnp.sum(fn(inputs)))(x)
