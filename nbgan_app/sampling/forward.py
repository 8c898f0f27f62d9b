"""A Keras generator's forward pass (training=False), compiled where the backend compiles it.

Called op by op, a Keras model pays Python dispatch for every layer: on a 2-core AVX2 EPYC the
demo M1 took 90 ms for 8 patches eagerly and 45 ms as one TensorFlow graph, and `nbgan demo`
spent most of its sampling time dispatching (`nbgan bench`, "compiled vs eager generator
calls"; BENCHMARKS.md). So:

- TensorFlow: one `tf.function` per model, without XLA (on the CPUs measured, XLA's train step
  was several times slower than the plain graph, which runs oneDNN's fused kernels; XLA for
  sampling on a GPU is unmeasured). Its values differ from eager execution by rounding (up to
  5e-7 on the demo M1) and are the same for any given input.
- JAX: `jax.jit` of `stateless_call`, given the model's current variable values at each call,
  so a generator still being trained is sampled with its latest weights.
- PyTorch: eager, as in training (`torch.compile` is not used anywhere in nbgan).

One compiled function per model object, cached while the model lives: the cached function holds
the model by a weak reference, so that the cache never keeps a model alive, and the handle
`forward` returns holds it strongly, so that a caller's model lives as long as its handle.
"""

from __future__ import annotations

import weakref
from typing import Callable

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Forward:
    """x (a batch, NumPy or backend tensor) -> the model's output on the backend, training=False.

    `compiled` is the model's cached compiled function (None: the model is called eagerly).
    """

    def __init__(self, model, compiled: Callable | None):
        self.model, self.compiled = model, compiled

    def __call__(self, x):
        if self.compiled is None:
            return self.model(x, training=False)
        return self.compiled(x)


def forward(model, compiled: bool = True) -> Forward:
    """The model's forward pass, compiled (once per model) unless compiled=False, the benchmark's
    reference, which calls the model eagerly."""
    if not compiled:
        return Forward(model, None)
    fn = _COMPILED.get(model)
    if fn is None:
        fn = _COMPILED[model] = _compile(model)
    return Forward(model, fn)


def _compile(model) -> Callable:
    import keras

    backend = keras.backend.backend()
    ref = weakref.ref(model)
    if backend == "tensorflow":
        import tensorflow as tf

        # one trace per input shape; the sampler's calls all have CALL_ROWS rows
        return tf.function(lambda x: ref()(x, training=False), jit_compile=False, reduce_retracing=True)
    if backend == "jax":
        import jax

        def call(trainable, non_trainable, x):
            return ref().stateless_call(trainable, non_trainable, x, training=False)[0]

        jitted = jax.jit(call)

        def run(x):
            model = ref()
            return jitted([v.value for v in model.trainable_variables],
                          [v.value for v in model.non_trainable_variables], x)

        return run
    return lambda x: ref()(x, training=False)
