"""Data-parallel training over the local devices, with the backends' own APIs.

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`,
  set before the models are built; the global batch is sharded along its
  first axis and the step's maths stays global, so the losses equal
  single-device training up to reduction order.
- TensorFlow: `tf.distribute.MirroredStrategy`; models, optimizers and `fit`
  live in its scope.
- PyTorch: not supported here (no Keras distribution API for it).

On one machine the CPU can be split for tests: JAX_NUM_CPU_DEVICES=2 (or
XLA_FLAGS=--xla_force_host_platform_device_count=2) before importing jax;
TensorFlow logical CPU devices via `split_tensorflow_cpu`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from nbgan_app.errors import InputError


def split_tensorflow_cpu(count: int) -> None:
    """Expose `count` logical CPU devices to TensorFlow (must run before TF initialises)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


@contextlib.contextmanager
def data_parallel(enabled: bool) -> Iterator[int]:
    """Scope for building and training data-parallel; yields the number of replicas."""
    if not enabled:
        yield 1
        return
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield len(devices)
        finally:
            keras.distribution.set_distribution(previous)
    elif backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    else:
        raise InputError(f"--distribute supports the jax and tensorflow backends, not {backend}")
