"""Data-parallel training over the local devices, with the backends' own APIs.

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`,
  set before the models are built; the global batch is sharded along its
  first axis and the step's maths stays global, so the losses equal
  single-device training up to reduction order.
- TensorFlow: `tf.distribute.MirroredStrategy`; models, optimizers and `fit`
  live in its scope. The step runs once per replica on its share of the
  global batch (replica i gets rows [i b, (i + 1) b) of it, b = B / replicas),
  and the optimizers all-reduce the gradients by SUM. So a replica's
  gradients are scaled by 1 / replicas (`replica_gradients`: its share of the
  global mean), and its random numbers are its rows of one draw for the
  global batch (`replica_rows`), so that the step equals single-device
  training on the global batch up to reduction order.
- PyTorch: not supported here (no Keras distribution API for it).

On one machine the CPU can be split for tests: JAX_NUM_CPU_DEVICES=2 (or
XLA_FLAGS=--xla_force_host_platform_device_count=2) before importing jax;
TensorFlow logical CPU devices via `split_tensorflow_cpu`.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

from nbgan_app.errors import InputError


def split_tensorflow_cpu(count: int) -> None:
    """Expose `count` logical CPU devices to TensorFlow (must run before TF initialises)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def replica_position():
    """(index, count) of this replica inside a TensorFlow replica context with count > 1; else (0, 1).

    The index may be a tensor. JAX's DataParallel keeps the step global, so it is (0, 1) there.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def replica_rows(draw):
    """This replica's rows of `draw`, an array drawn for the global batch (count * b, ...)."""
    from keras import ops

    index, count = replica_position()
    if count == 1:
        return draw
    shares = ops.reshape(draw, (count, -1) + tuple(draw.shape[1:]))
    return ops.take(shares, index, axis=0)


def replica_gradients(grads):
    """Gradients of the replica's mean loss scaled by 1 / replicas, so their all-reduced SUM is
    the gradient of the global-batch mean (all replicas hold equal shares)."""
    _, count = replica_position()
    if count == 1:
        return grads
    return [g * (1.0 / count) for g in grads]


@functools.cache
def _mirrored_strategy():
    """One MirroredStrategy per process: two strategies in one process hand out the same
    collective instance keys, and TensorFlow then aborts with a shape mismatch."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


def local_replicas() -> int:
    """How many replicas `data_parallel(True)` would train on. InputError on the torch backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return len(keras.distribution.list_devices())
    if backend == "tensorflow":
        return _mirrored_strategy().num_replicas_in_sync
    raise InputError(f"--distribute: supported on the jax and tensorflow backends, not {backend} "
                     f"(set KERAS_BACKEND=jax or tensorflow)")


def check_distribute(enabled: bool, batch_size: int) -> int:
    """Replica count for a data-parallel run (1 if not enabled), checked before anything is written.

    Every replica must get an equal share of the global batch: the losses are
    means, and the per-replica means combine into the global one only then.
    """
    if not enabled:
        return 1
    replicas = local_replicas()
    if batch_size % replicas:
        raise InputError(f"train.batch_size: {batch_size} does not split evenly over {replicas} devices "
                         f"for --distribute; use a multiple of {replicas}")
    return replicas


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
        strategy = _mirrored_strategy()
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    else:
        local_replicas()  # raises InputError: no data-parallel API for this backend
