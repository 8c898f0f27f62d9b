"""Data-parallel training over the local devices, or over many processes, with the backends' own APIs.

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

Across processes (`nbgan train --distribute` started once per process, on one
machine or many; docs/cluster.md), the same step runs over every device of
every process:
- JAX: `keras.distribution.initialize` (over `jax.distributed`) before JAX
  starts, then `DataParallel` over the devices of all processes. Each process
  feeds its rows of the global batch (`ProcessRows`: process p of P gets rows
  [p B/P, (p+1) B/P)); Keras assembles them into the global array.
- TensorFlow: `tf.distribute.MultiWorkerMirroredStrategy`, configured by
  TF_CONFIG (made from the variables below when the user did not set it).
  Every process makes the whole global batch, and the strategy's own input
  sharding hands replica r of R (counted over all processes) rows
  [r B/R, (r+1) B/R): the single-process scheme above, with global replica ids.
  `adapt_model` works around two faults of Keras 3 with this strategy
  (tensorflow/tensorflow#72388).
So a step equals single-device training on the global batch, up to reduction order.
Refusals before training and stop requests (SIGTERM, the dashboard) are
agreed by all processes (`together`, `any_process`): one process never leaves
the others waiting in a collective. A process that crashes does: the engines'
own time-outs end the others.

Where the processes come from: `nbgan_app/cluster.py`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from typing import Iterator

from nbgan_app.cluster import Processes, processes_from_env
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
    """One strategy per process: two strategies in one process hand out the same collective
    instance keys, and TensorFlow then aborts with a shape mismatch. Across processes it is a
    MultiWorkerMirroredStrategy, over the TF_CONFIG that `start_processes` left."""
    import tensorflow as tf

    if _started.count > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy()


def local_replicas() -> int:
    """How many replicas `data_parallel(True)` would train on, over all processes. InputError on torch."""
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
    Across processes, call `start_processes` first.
    """
    if not enabled:
        return 1
    replicas = local_replicas()
    if batch_size % replicas:
        where = f" of {_started.count} processes" if _started.count > 1 else ""
        raise InputError(f"train.batch_size: {batch_size} does not split evenly over {replicas} devices{where} "
                         f"for --distribute; use a multiple of {replicas}")
    return replicas


# --- across processes -------------------------------------------------------------------------------

_started = Processes()  # what start_processes set up in this process


def started() -> Processes:
    """The processes this one trains with (`Processes()`, one process, unless `start_processes` ran)."""
    return _started


def start_processes(enabled: bool) -> Processes:
    """For `--distribute`: join the other processes of the run, if the environment names any.

    Must run before the backend computes anything (JAX: before `jax.devices()`;
    TensorFlow: before any op), and once per process. JAX:
    `keras.distribution.initialize` over `jax.distributed`, which waits for
    every process at the coordinator. TensorFlow: TF_CONFIG for
    MultiWorkerMirroredStrategy, made here unless the user set it (the strategy
    itself starts in `check_distribute`). Returns the processes
    (`Processes()` without `enabled` or without others).
    """
    global _started
    if not enabled:
        return Processes()
    if _started.count > 1:
        return _started  # joined already: the engines start once per process
    import keras

    backend = keras.backend.backend()
    found = processes_from_env(backend=backend)
    if found.count == 1:
        return found
    if backend == "jax":
        keras.distribution.initialize(found.addresses[0], found.count, found.index)
    elif backend == "tensorflow":
        if not found.tf_config:
            os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": list(found.addresses)},
                                                  "task": {"type": "worker", "index": found.index}})
    else:
        local_replicas()  # raises InputError: no data-parallel API for this backend
    _started = found
    return found


def agree(value: int) -> tuple[int, int]:
    """(min, max) of `value` over the processes of the run; every process must call it, in the same order.

    A barrier too. One process: (value, value).
    """
    if _started.count == 1:
        return value, value
    import keras

    if keras.backend.backend() == "jax":
        import numpy as np
        from jax.experimental import multihost_utils

        values = np.asarray(multihost_utils.process_allgather(np.array([value], dtype=np.int64)))
        return int(values.min()), int(values.max())
    import tensorflow as tf

    strategy = _mirrored_strategy()  # reduces by SUM or MEAN only: gather every replica's value instead
    values = strategy.gather(strategy.run(lambda: tf.constant([value], dtype=tf.int64)), axis=0).numpy()
    return int(values.min()), int(values.max())


@contextlib.contextmanager
def together() -> Iterator[None]:
    """A block every process of the run runs; an InputError in it on any process is one on all.

    The failing process raises its own error, the others one line saying that
    another process refused the run. One process: the block as it is.
    """
    failure = None
    try:
        yield
    except InputError as exc:
        failure = exc
    if _started.count > 1:
        _, worst = agree(1 if failure is not None else 0)
        if worst and failure is None:
            raise InputError("another process of this --distribute run refused it; its own error line says why")
    if failure is not None:
        raise failure


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on any (one collective per call across processes)."""
    if _started.count == 1:
        return bool(flag)
    return agree(1 if flag else 0)[1] > 0


def adapt_model(gan):
    """`gan` made ready for TensorFlow's multi-worker strategy (unchanged otherwise).

    Keras 3's TensorFlow trainer, under MultiWorkerMirroredStrategy, reduces a
    step's logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on
    scalars, and before the first step reduces a whole input batch, which fails
    on a nested one (tensorflow/tensorflow#72388). So the step's logs are
    returned as 1-vectors (their mean over replicas is the scalar the logs show),
    and the model forgets the strategy it was built under: Keras then skips
    that symbolic build and takes the strategy from the scope `data_parallel`
    opens around training, the same one.
    """
    import keras

    if _started.count == 1 or keras.backend.backend() != "tensorflow":
        return gan
    from keras import ops

    step = gan.train_step

    def train_step(data):
        return {key: ops.reshape(value, (1,)) for key, value in step(data).items()}

    gan.train_step = train_step
    gan._distribute_strategy = None
    return gan


def process_rows(batches, processes: Processes | None = None):
    """`batches` as this process feeds them: on JAX across processes, its rows of each global batch
    (Keras assembles the processes' rows into the global array); otherwise all of them
    (TensorFlow's multi-worker strategy shards the global batch itself)."""
    import keras

    processes = processes or _started
    if processes.count == 1 or keras.backend.backend() != "jax":
        return batches
    return ProcessRows(batches, processes.index, processes.count)


def _rows(item, index: int, count: int):
    if isinstance(item, tuple):
        return tuple(_rows(part, index, count) for part in item)
    share = len(item) // count
    return item[index * share:(index + 1) * share]


def _dataset_class():
    import keras

    class Rows(keras.utils.PyDataset):
        """Rows [index b, (index + 1) b) of every batch of `batches` (b = batch / count), tuples part by part."""

        def __init__(self, batches, index: int, count: int):
            super().__init__()
            self.batches, self.index, self.count = batches, index, count

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, i):
            return _rows(self.batches[i], self.index, self.count)

    return Rows


def ProcessRows(batches, index: int, count: int):  # noqa: N802 - a class made late, so keras imports late
    return _dataset_class()(batches, index, count)


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
        # across processes each one feeds its own rows (`process_rows`): no sharding of Keras's on top
        keras.distribution.set_distribution(keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=_started.count == 1))
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
