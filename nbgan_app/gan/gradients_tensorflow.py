"""Gradients on TensorFlow: GradientTape, nested for the penalty's double backprop."""

from __future__ import annotations

import tensorflow as tf


def value_and_grad(fn):
    def wrapped(params, *args):
        with tf.GradientTape() as tape:
            tape.watch(params)
            value, aux = fn(params, *args)
        grads = tape.gradient(value, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return (value, aux), grads

    return wrapped


def input_gradient(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(fn(x))
    return tape.gradient(total, x)
