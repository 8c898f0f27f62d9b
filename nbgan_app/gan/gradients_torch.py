"""Gradients on PyTorch: torch.autograd.grad, with create_graph=True for the penalty (eager mode)."""

from __future__ import annotations

import torch


def value_and_grad(fn):
    def wrapped(params, *args):
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(True) for p in params]
            value, aux = fn(leaves, *args)
            grads = torch.autograd.grad(value, leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]
        aux = torch.utils._pytree.tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux)
        return (value.detach(), aux), grads

    return wrapped


def input_gradient(fn, x):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    return grad
