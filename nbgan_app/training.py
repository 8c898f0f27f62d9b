"""Training one scale into a run directory: `train(config, scale, run_dir)`.

The loop is Keras's own `fit` over `TrainingBatches`, with a callback that logs
to metrics.jsonl, checkpoints, evaluates statistics on held-out cubes, and
stops gracefully on SIGTERM or when the caller's `should_stop` says so
(checkpoint first). Running the same command
again resumes from the newest checkpoint: batches are a pure function of
(seed, step), every variable is restored, and metrics past the checkpoint are
dropped, so 2 + 2 steps with a restart equal 4 uninterrupted steps. A newest
checkpoint that cannot be restored (damaged, or of another model) is skipped
with one line on stderr, and the run resumes exactly from the one before it.

Everything that can refuse a run (config, run directory, lock, data,
held-out split, distribution, model) is checked before the run directory,
its config.json or its lock is created, so a refused command leaves nothing
behind and its corrected rerun starts clean.

With `--distribute` across processes (`distribute` module), every process runs
this same loop in step; the chief (process 0) alone writes in the run
directory (metrics, checkpoints, state, evaluation), the others only read its
checkpoints to resume from the same one, and every refusal or stop request is
agreed by all processes, so none is left waiting for the others.

A scale's second stage (`refine`: from the run's best generator, at lower
learning rates) splits the call's `fit` at its switch, which is checkpointed,
and again where its losses start later; the rates restored with a checkpoint
say which stage it is in.

Logged losses are means over the log interval (the trackers are reset after
each log line); checkpoints fall on log boundaries (config check), so the
intervals line up across a resume.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from nbgan_app import checkpoints, refine, rundir, scales
from nbgan_app.config import Config
from nbgan_app.errors import InputError
# imported by name: tests replace training.scale_levels to feed a run bad data
from nbgan_app.training_setup import backend_name, build_compiled_gan, make_batches, precision_warning, scale_levels


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


def make_monitor(config, scale, run_dir, gan_evaluator, start_step, total_steps, stop, report,
                 damaged: set[int] | None = None, chief: bool = True):
    """The fit() callback: log, checkpoint, evaluate, and stop once `stop()` is true. Built lazily
    so keras imports late. `damaged`: steps of checkpoints that could not be restored
    (`checkpoints.save_checkpoint`). Only a `chief` writes (metrics, checkpoints, state)."""
    import keras

    train = config.train
    backend = backend_name()
    damaged = set() if damaged is None else damaged

    class Monitor(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = start_step
            self.failure: dict | None = None  # the non-finite losses of the step that stopped training
            self.stopped = False  # whether `stop()` ended training

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % train.log_every == 0 or self.step == total_steps:
                record = {"step": self.step, "time": time.time()}
                record.update({k: float(logs[k]) for k in rundir.LOSSES})
                if not _finite(record):
                    self.failure = {k: record[k] for k in rundir.LOSSES if not math.isfinite(record[k])}
                    self.model.stop_training = True
                    return
                if self.step % refine.eval_every(config, scale, self.step) == 0 or self.step == total_steps:
                    with self.model.sampling_weights():  # score what sampling will use
                        record.update(gan_evaluator(self.model, self.step))
                if chief:
                    rundir.append_metrics(run_dir, record)
                report(self.step, record)
                self.model.reset_metrics()
            if self.step % train.checkpoint_every == 0 or self.step == total_steps:
                _save(run_dir, self.model, self.step, backend, damaged, chief)
                damaged.discard(self.step)  # replaced by a good one
                if chief:
                    rundir.write_state(run_dir, "running", self.step)
            if stop():
                self.stopped = self.model.stop_training = True

    return Monitor()


def _save(run_dir: Path, gan, step: int, backend: str, damaged: set[int], chief: bool) -> None:
    """`checkpoints.save_checkpoint` on the chief; the others swap in the sampling weights and back
    as it does, so that every process runs the same computations on the shared variables."""
    if chief:
        checkpoints.save_checkpoint(run_dir, gan, step, backend, damaged)
    else:
        with gan.sampling_weights():
            pass


@contextlib.contextmanager
def _run_lock(run_dir: Path, chief: bool):
    """The run's lock, held by the chief alone; a refusal to lock is every process's (`distribute.together`)."""
    from nbgan_app.distribute import together

    with contextlib.ExitStack() as held:
        with together():
            if chief:
                held.enter_context(rundir.run_lock(run_dir))
        yield


def _resume(run_dir: Path, gan, backend: str, chief: bool = True) -> tuple[int, set[int]]:
    """Restore the newest checkpoint that loads (if any); drop metrics logged after it.

    Returns its step and the steps of newer checkpoints that could not be
    restored; those are named in one line on stderr and left on disk until a
    good checkpoint replaces them. A restored checkpoint whose generator.keras
    or meta.json is damaged is rewritten from its state, so sampling finds it whole.
    Across processes every one restores the same checkpoint at the same time
    (assigning shared variables runs collectives on JAX), once the chief has cleaned the run
    directory; only the chief writes and speaks. InputError on all unless all
    see the same checkpoints (the run directory must be shared).
    """
    from nbgan_app.distribute import started

    many = started().count > 1
    if chief:
        checkpoints.clean_partial(run_dir)
    if many:  # after the chief's cleaning; then what every process will restore from must be the same
        newest = checkpoints.latest_checkpoint(run_dir)
        _same_everywhere(run_dir, newest[0] if newest else 0)
    try:
        step, skipped = checkpoints.restore_newest(run_dir, gan)
    except checkpoints.DamagedCheckpoint as exc:
        raise InputError(f"run {run_dir}: {exc}; move its {rundir.CHECKPOINTS} directory away to train from "
                         f"step 0, or use a new --run-dir") from None
    damaged = {s for s, _ in skipped}
    if skipped and chief:
        checkpoints.note(checkpoints.fallback_note(run_dir, skipped,
                                                   f"resuming from {checkpoints.step_name(step)}"))
    if step:
        path = Path(run_dir) / rundir.CHECKPOINTS / checkpoints.step_name(step)
        try:
            checkpoints.check_generator_file(path)
            checkpoints.check_meta(path, step)
        except checkpoints.DamagedCheckpoint as exc:
            _save(run_dir, gan, step, backend, damaged, chief)
            if chief:
                checkpoints.note(f"run {run_dir}: checkpoint {checkpoints.step_name(step)}: {exc}; "
                                 f"rewritten from its {checkpoints.STATE_FILE}")
    if chief:
        rundir.truncate_metrics(run_dir, step)
    if many:
        _same_everywhere(run_dir, step)
    return step, damaged


def _same_everywhere(run_dir: Path, step: int) -> None:
    """InputError on every process unless all found the same checkpoint step."""
    from nbgan_app.distribute import agree

    low, high = agree(step)
    if low != high:
        raise InputError(f"run {run_dir}: its processes found different checkpoints (steps {low} to {high}): "
                         f"every process must see the same run directory (a shared filesystem)")


def _non_finite_message(run_dir: Path, step: int, losses: dict, damaged: set[int]) -> str:
    """The NaN guard's one line: the step, the non-finite losses, and where a rerun would resume, if anywhere."""
    values = ", ".join(f"{k}={v}" for k, v in losses.items())
    good = [s for s, _ in checkpoints.list_checkpoints(run_dir) if s <= step and s not in damaged]
    if good:
        after = (f"a rerun resumes from step {good[-1]}, the newest good checkpoint (it replays the same "
                 f"batches: to change the learning rates, train a new --run-dir)")
    else:
        after = (f"there is no checkpoint to resume from: the run must be restarted (delete {run_dir} "
                 f"or use a new --run-dir)")
    return f"run {run_dir}: non-finite loss at step {step} ({values}); training stopped; {after}"


def _stages(start: int, cuts: list[int | None], total: int) -> list[tuple[int, int]]:
    """The (first, last) steps of each `fit` of a training call, split at each of `cuts` (None: no cut)
    within [start, total): the second stage's switch (`refine.switch_step`), which happens before the
    stage that begins at it, and the start of its losses (`refine.losses_step`), which are constants of
    a traced train step."""
    bounds = sorted({start, total, *(c for c in cuts if c is not None and start <= c < total)})
    return list(zip(bounds[:-1], bounds[1:]))


def _switch(config: Config, scale: str, run_dir: Path, gan, at: int, backend: str, damaged: set[int],
            chief: bool) -> None:
    """`refine.switch` at step `at`, checkpointed there at once (replacing the first stage's checkpoint)."""
    refine.switch(config, scale, run_dir, gan, at, chief)
    _save(run_dir, gan, at, backend, damaged, chief)
    damaged.discard(at)


def _result(run_dir: Path, start: int, total: int, state: str, step: int) -> dict:
    """The run's state.json, plus `start` (the step this call resumed from), `total` (the step it trained to)
    and `process` (this one's index among the run's processes; the others return `state` and `step`)."""
    from nbgan_app.distribute import started

    process = started().index
    if process:  # the chief may not have written state.json yet
        return {"state": state, "step": step, "start": start, "total": total, "process": process}
    return dict(rundir.read_state(run_dir) or {}, start=start, total=total, process=process)


def train(config: Config, scale: str, run_dir: Path, steps: int | None = None,
          progress: bool | None = None, distribute: bool = False,
          should_stop: Callable[[], bool] | None = None, parents: bool = True,
          on_run_dir: Callable[[Path], None] | None = None) -> dict:
    """Train (or resume) one scale to `steps` generator steps in `run_dir`; returns the final state.

    The state is state.json's content plus `start`, the step this call resumed
    from: `start == step >= total` means there was nothing to train.
    `distribute` trains data-parallel over the local devices, or over the
    processes the environment names (`distribute` module); the batch size is the
    global batch, and across processes the result holds `process` (this one's
    index; process 0 alone writes). `should_stop` is asked after every step;
    once it returns True, training checkpoints and ends in state "stopped", as on
    SIGTERM, and running again resumes exactly. `parents` lets a new run directory's
    missing parents be made (else its parent must exist). `on_run_dir(run_dir)` is
    called once the run directory exists and is locked, just before training (not
    when there is nothing to train): `nbgan train --device` records its device
    there. Raises InputError for bad data/config, a locked run, no checkpoint
    that can be restored, non-finite losses, or running out of memory at
    start-up; a refusal before training creates nothing.
    """
    from nbgan_app.dataset import load_dataset, split_dataset
    from nbgan_app.distribute import (adapt_model, any_process, check_distribute, data_parallel, process_rows,
                                      start_processes, together)
    from nbgan_app.evaluation import Evaluator, monitor_cubes
    from nbgan_app.progress import StepReporter
    from nbgan_app.run_setup import check_run_dir, prepare_run_dir, record_plan

    total = steps or config.train.steps
    backend = backend_name()
    run_dir = Path(run_dir)
    chief = start_processes(distribute).chief  # joins the run's other processes, if any; 0 writes
    write_state = rundir.write_state if chief else (lambda *args: None)
    # every check before anything is created: a refused run leaves no run directory (or nothing new in one)
    with together():  # across processes, a refusal on one is a refusal on all: none waits forever
        check_distribute(distribute, config.train.batch_size)
        check_run_dir(config, scale, run_dir, backend, parents, lock=chief)  # a file, another run, a lock
    with data_parallel(distribute):
        with together():  # the chief loads first: it may simulate the data into the cache the others read
            if chief:
                counts, box_size = load_dataset(config, progress=progress is not False)
        with together():
            if not chief:
                counts, box_size = load_dataset(config, progress=False)
            train_counts, held_out = split_dataset(config, counts)
            if len(held_out) == 1 and chief:
                print("warning: data.held_out = 1: the monitor draws statistics but scores need at least 2 "
                      "held-out cubes (use 0 for no evaluation, or 2 or more)", file=sys.stderr, flush=True)
            gan = adapt_model(build_compiled_gan(config, scale))
            if chief and (warning := precision_warning(config)):
                print(warning, file=sys.stderr, flush=True)
            # the chief alone evaluates; its monitor's fresh boxes, where the scale has them, are simulated here
            evaluator = (Evaluator(config, scale, monitor_cubes(config, scale, held_out, progress is not False),
                                   box_size, run_dir) if chief else lambda gan, step: {})
            if chief:
                run_dir = prepare_run_dir(config, scale, run_dir, backend, parents)
        with _run_lock(run_dir, chief):
            start, damaged = _resume(run_dir, gan, backend, chief)
            if start >= total:
                write_state(run_dir, "finished", start)
                return _result(run_dir, start, total, "finished", start)
            at = refine.switch_step(config, scale, run_dir, gan, start, total)  # refuses before "running"
            losses = refine.losses_step(config, scale, start, total)
            refine.resume(config, scale, gan, start)  # a run resumed in its second stage gets its losses again
            if on_run_dir is not None and chief:
                on_run_dir(run_dir)
            if chief:  # a best scored on another number of monitor cubes competes on equal terms
                record_plan(config, scale, run_dir)
                evaluator.rescore_best()
            write_state(run_dir, "running", start)
            stop = _StopRequest()
            reporter = StepReporter(total, start, enabled=progress if chief else False)
            asked = should_stop or (lambda: False)
            monitor = make_monitor(config, scale, run_dir, evaluator, start, total,
                                   lambda: any_process(stop.requested or asked()), reporter.update, damaged, chief)
            levels = scale_levels(config, scale, train_counts, inplace=True)
            try:
                with reporter, stop:
                    for first, last in _stages(start, [at, losses], total):
                        if first != start and (monitor.failure or monitor.stopped):
                            break
                        if first == at:
                            _switch(config, scale, run_dir, gan, at, backend, damaged, chief)
                        if first == losses:
                            refine.start_losses(config, scale, gan)
                        batches = process_rows(make_batches(config, scale, levels, first, last - first))
                        gan.fit(batches, epochs=1, verbose=0, callbacks=[monitor], shuffle=False)
            except Exception as exc:  # noqa: BLE001 - an OOM at the first step is the user's to fix
                if monitor.step == start and _is_out_of_memory(exc):
                    message = (f"out of memory at start-up: lower train.batch_size (now {config.train.batch_size}) "
                               f"or the {scales.scale(scale).section} filters")
                    write_state(run_dir, "failed", start, message)
                    raise InputError(message) from None
                write_state(run_dir, "failed", monitor.step, f"{type(exc).__name__}: {exc}")
                raise
            if monitor.failure:
                message = _non_finite_message(run_dir, monitor.step, monitor.failure, damaged)
                write_state(run_dir, "failed", monitor.step, message)
                raise InputError(message)
            if monitor.step % config.train.checkpoint_every and monitor.step != total:
                _save(run_dir, gan, monitor.step, backend, damaged, chief)
                damaged.discard(monitor.step)
            state = "finished" if monitor.step >= total else "stopped"
            write_state(run_dir, state, monitor.step)
            return _result(run_dir, start, total, state, monitor.step)
