"""Training one scale into a run directory: `train(config, scale, run_dir)`.

The loop is Keras's own `fit` over `TrainingBatches`, with a callback that logs
to metrics.jsonl, checkpoints, evaluates statistics on held-out cubes, and
stops gracefully on SIGTERM or when the caller's `should_stop` says so
(checkpoint first). Running the same command
again resumes from the newest checkpoint: batches are a pure function of
(seed, step), every variable is restored, and metrics past the checkpoint are
dropped, so 2 + 2 steps with a restart equal 4 uninterrupted steps.

Logged losses are means over the log interval (the trackers are reset after
each log line); checkpoints fall on log boundaries (config check), so the
intervals line up across a resume.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nbgan_app import checkpoints, rundir, scales
from nbgan_app.config import Config
from nbgan_app.errors import InputError


def backend_name() -> str:
    import keras

    return keras.backend.backend()


def use_jit(config: Config) -> bool:
    """Resolve train.jit_compile. 'auto': JAX always compiles; torch stays eager (double
    backward refuses torch.compile); TensorFlow uses XLA on a GPU, and the plain
    tf.function graph (oneDNN) on a CPU, where XLA measured slower (DESIGN.md)."""
    setting = config.train.jit_compile
    backend = backend_name()
    if setting == "on":
        if backend == "torch":
            raise InputError("train.jit_compile: 'on' is not possible on the torch backend "
                             "(torch.compile refuses the penalty's double backward)")
        return True
    if setting == "off":
        return False
    if backend == "jax":
        return True
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def scale_levels(config: Config, scale: str, counts: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Transformed cubes at the scale's level (N, S, S, S) float32: `pyramid.level_of` at the scale's side.

    With `inplace`, the finest level overwrites `counts` (float32) instead of copying it.
    """
    from nbgan_app.pyramid import level_of

    return level_of(config, counts, config.level_size(scale), inplace=inplace)


def make_batches(config: Config, scale: str, levels: np.ndarray, first_step: int, steps: int):
    from nbgan_app.training_data import TrainingBatches

    scale = scales.scale(scale)
    return TrainingBatches(
        levels,
        batch_size=config.train.batch_size,
        num_critic_steps=config.train.num_critic_steps,
        patch=None if scale.whole_cube else config.pyramid.patch,
        factor=scale.factor(config.pyramid),
        seed=config.train.seed,
        steps=steps,
        first_step=first_step,
    )


def build_compiled_gan(config: Config, scale: str):
    """The scale's WGAN-GP, compiled with its optimizers (their slots already built)."""
    import keras

    from nbgan_app.models.factory import build_gan, build_optimizers

    keras.mixed_precision.set_global_policy(config.train.precision)
    keras.utils.set_random_seed(config.train.seed)  # initial weights are a function of the seed
    gan = build_gan(config, scale)
    d_optimizer, g_optimizer = build_optimizers(config.train)
    gan.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, jit_compile=use_jit(config))
    return gan


class _StopRequest:
    """While active, SIGTERM/SIGINT set a flag; the monitor stops at the next step boundary.

    A context manager: the previous handlers come back afterwards, so Ctrl-C
    interrupts whatever the process does after training as usual.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self.previous = {}

    def _handler(self, signum, frame):
        self.requested = True

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self._handler) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _is_out_of_memory(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return isinstance(exc, MemoryError) or any(
        key in text for key in ("ResourceExhausted", "RESOURCE_EXHAUSTED", "OutOfMemory", "out of memory"))


def _finite(record: dict) -> bool:
    return all(math.isfinite(record[k]) for k in rundir.LOSSES)


def make_monitor(config, scale, run_dir, gan_evaluator, start_step, total_steps, stop, report):
    """The fit() callback: log, checkpoint, evaluate, and stop once `stop()` is true. Built lazily
    so keras imports late."""
    import keras

    train = config.train
    backend = backend_name()

    class Monitor(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = start_step
            self.failure: str | None = None

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % train.log_every == 0 or self.step == total_steps:
                record = {"step": self.step, "time": time.time()}
                record.update({k: float(logs[k]) for k in rundir.LOSSES})
                if not _finite(record):
                    self.failure = f"non-finite loss at step {self.step}: {record}"
                    self.model.stop_training = True
                    return
                if self.step % train.eval_every == 0 or self.step == total_steps:
                    with self.model.sampling_weights():  # score what sampling will use
                        record.update(gan_evaluator(self.model, self.step))
                rundir.append_metrics(run_dir, record)
                report(self.step, record)
                self.model.reset_metrics()
            if self.step % train.checkpoint_every == 0 or self.step == total_steps:
                checkpoints.save_checkpoint(run_dir, self.model, self.step, backend)
                rundir.write_state(run_dir, "running", self.step)
            if stop():
                self.model.stop_training = True

    return Monitor()


def _resume(run_dir: Path, gan) -> int:
    """Restore the newest checkpoint (if any); drop metrics logged after it. Returns its step."""
    checkpoints.clean_partial(run_dir)
    latest = checkpoints.latest_checkpoint(run_dir)
    step = 0
    if latest is not None:
        step, path = latest
        checkpoints.restore_checkpoint(path, gan)
    rundir.truncate_metrics(run_dir, step)
    return step


def train(config: Config, scale: str, run_dir: Path, steps: int | None = None,
          progress: bool | None = None, distribute: bool = False,
          should_stop: Callable[[], bool] | None = None) -> dict:
    """Train (or resume) one scale to `steps` generator steps in `run_dir`; returns the final state.

    `distribute` trains data-parallel over the local devices (`distribute` module);
    the batch size is the global batch. `should_stop` is asked after every step;
    once it returns True, training checkpoints and ends in state "stopped", as on
    SIGTERM, and running again resumes exactly. Raises InputError for bad data/config, a
    locked run, or running out of memory at start-up.
    """
    from nbgan_app.dataset import load_dataset, split_dataset
    from nbgan_app.distribute import check_distribute, data_parallel
    from nbgan_app.evaluation import Evaluator
    from nbgan_app.progress import StepReporter
    from nbgan_app.run_setup import prepare_run_dir

    total = steps or config.train.steps
    check_distribute(distribute, config.train.batch_size)  # before the run directory is made
    run_dir = prepare_run_dir(config, scale, run_dir, backend_name())
    with rundir.run_lock(run_dir), data_parallel(distribute):
        counts, box_size = load_dataset(config, progress=progress is not False)
        train_counts, held_out = split_dataset(config, counts)
        gan = build_compiled_gan(config, scale)
        start = _resume(run_dir, gan)
        if start >= total:
            rundir.write_state(run_dir, "finished", start)
            return rundir.read_state(run_dir)
        rundir.write_state(run_dir, "running", start)
        stop = _StopRequest()
        reporter = StepReporter(total, start, enabled=progress)
        evaluator = Evaluator(config, scale, held_out, box_size, run_dir)
        asked = should_stop or (lambda: False)
        monitor = make_monitor(config, scale, run_dir, evaluator, start, total,
                               lambda: stop.requested or asked(), reporter.update)
        batches = make_batches(config, scale, scale_levels(config, scale, train_counts, inplace=True),
                               start, total - start)
        try:
            with reporter, stop:
                gan.fit(batches, epochs=1, verbose=0, callbacks=[monitor], shuffle=False)
        except Exception as exc:  # noqa: BLE001 - an OOM at the first step is the user's to fix
            if monitor.step == start and _is_out_of_memory(exc):
                message = (f"out of memory at start-up: lower train.batch_size (now {config.train.batch_size}) "
                           f"or the {scales.scale(scale).section} filters")
                rundir.write_state(run_dir, "failed", start, message)
                raise InputError(message) from None
            rundir.write_state(run_dir, "failed", monitor.step, f"{type(exc).__name__}: {exc}")
            raise
        if monitor.failure:
            rundir.write_state(run_dir, "failed", monitor.step, monitor.failure + " (last good checkpoint kept)")
            raise InputError(monitor.failure + "; the last good checkpoint is kept")
        if monitor.step % config.train.checkpoint_every and monitor.step != total:
            checkpoints.save_checkpoint(run_dir, gan, monitor.step, backend_name())
        state = "finished" if monitor.step >= total else "stopped"
        rundir.write_state(run_dir, state, monitor.step)
        return rundir.read_state(run_dir)

