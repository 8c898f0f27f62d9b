"""Loading trained runs for sampling: the resolved config, the scale, the latest generator.

A run directory (nbgan_app.rundir) holds config.json = {"config": resolved
config, "run": {"scale", "backend", ...}} and complete checkpoints
`checkpoints/step-<N>/` with `generator.keras` (nbgan_app.checkpoints).

A run samples from its best generator by monitor error (`best/`, written
during training: `nbgan_app.best`), or, without one, from the newest
checkpoint whose generator loads. A best or newer checkpoint whose
generator.keras is missing or damaged (a truncated copy, say) is skipped
with one line on stderr; with checkpoints but no generator that loads, the
run is refused by name. `checkpoint_of` and `load_generator` agree
on the checkpoint, and the model is loaded (and the line printed) once per
state of the run's checkpoints.

Given a `step`, both use that checkpoint and no other: the workers of one
sample (`workers`) load the checkpoints the driver chose, even while a run
still trains and writes newer ones.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.run_setup import read_run
from nbgan_app.sampling.chain import RunInfo
from nbgan_app.sampling.sampler import to_numpy

# the loaded generator of the last few runs: run directory -> (what its checkpoints looked like, step, dir, model)
_LOADED: OrderedDict[Path, tuple[tuple, int, Path, object]] = OrderedDict()
_LOADED_MAX = 4  # a chain is 3 runs


def load_run(path: str | Path) -> RunInfo:
    """The scale and config of the run at `path`; InputError if it is not a run directory."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"run {path} does not exist")
    scale, config = read_run(path)
    return RunInfo(path, scale, config)


def _signature(found: list[tuple[int, Path]]) -> tuple:
    """The run's checkpoints as (step, size and mtime of generator.keras): a new or rewritten file changes it."""
    from nbgan_app.checkpoints import GENERATOR_FILE

    out = []
    for step, directory in found:
        try:
            stat = (directory / GENERATOR_FILE).stat()
            out.append((step, stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append((step, None, None))
    return tuple(out)


def _load_model(directory: Path):
    """The Keras generator of one checkpoint; DamagedCheckpoint when its file is missing or does not load."""
    import keras

    import nbgan_app.models.factory  # noqa: F401  (registers the custom layers the file may name)
    from nbgan_app.checkpoints import GENERATOR_FILE, DamagedCheckpoint, check_generator_file, describe

    check_generator_file(directory)  # a clear reason for a truncated file, where Keras says "file not found"
    try:
        return keras.saving.load_model(directory / GENERATOR_FILE, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure to load makes this checkpoint unusable, say why
        raise DamagedCheckpoint(f"{GENERATOR_FILE} does not load: {describe(exc)}") from None


def _newest_generator(run: RunInfo) -> tuple[int, Path, object]:
    """(step, directory, model) the run samples from: its best generator by monitor error
    (`nbgan_app.best`), or else the newest checkpoint whose generator loads; InputError if none does."""
    from nbgan_app import best, checkpoints

    chosen = best.read_best(run.path)
    found = checkpoints.list_checkpoints(run.path)
    key, signature = Path(run.path).resolve(), _signature(([chosen[:2]] if chosen else []) + found)
    cached = _LOADED.get(key)
    if cached is not None and cached[0] == signature:
        _LOADED.move_to_end(key)
        return cached[1:]
    loaded = None
    if chosen is not None:
        try:
            loaded = chosen[0], chosen[1], _load_model(chosen[1])
        except checkpoints.DamagedCheckpoint as exc:
            checkpoints.note(f"run {run.path}: its best generator ({best.BEST}/{chosen[1].name}) cannot be used "
                             f"({exc}); using its newest checkpoint instead")
    if loaded is None:
        loaded = _newest_checkpoint(run, found)
    _LOADED[key] = (signature, *loaded)
    _LOADED.move_to_end(key)
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return loaded


def _newest_checkpoint(run: RunInfo, found: list[tuple[int, Path]]) -> tuple[int, Path, object]:
    """(step, directory, model) of the newest of `found` whose generator loads; InputError if none does."""
    from nbgan_app import checkpoints

    if not found:
        raise InputError(f"run {run.path} has no checkpoint with a generator (train it first)")
    skipped: list[tuple[int, str]] = []
    for step, directory in reversed(found):
        try:
            model = _load_model(directory)
        except checkpoints.DamagedCheckpoint as exc:
            skipped.append((step, str(exc)))
            continue
        if skipped:
            checkpoints.note(checkpoints.fallback_note(
                run.path, skipped, f"using the generator of {checkpoints.step_name(step)}"))
        return step, directory, model
    newest, reason = skipped[0]
    raise InputError(f"run {run.path} has no checkpoint whose generator loads "
                     f"({len(skipped)} tried; newest {checkpoints.step_name(newest)}: {reason})")


def _generator_at(run: RunInfo, step: int) -> tuple[int, Path, object]:
    """(step, directory, model) of the run's best generator or checkpoint of `step`; InputError if it is
    gone or does not load."""
    from nbgan_app import best, checkpoints

    found = dict(checkpoints.list_checkpoints(run.path))
    chosen = best.read_best(run.path)
    if chosen is not None and chosen[0] == step:  # the best generator is what a sample is started from
        found[step] = chosen[1]
    if step not in found:
        raise InputError(f"run {run.path} no longer has {checkpoints.step_name(step)}, the checkpoint this "
                         "sample was started from (removed since?); start the sample anew")
    cached = _LOADED.get(Path(run.path).resolve())
    if cached is not None and cached[1] == step:  # a complete checkpoint is never rewritten
        return cached[1:]
    try:
        model = _load_model(found[step])
    except checkpoints.DamagedCheckpoint as exc:
        raise InputError(f"run {run.path}: {checkpoints.step_name(step)}, the checkpoint this sample was "
                         f"started from, no longer loads: {exc}") from None
    return step, found[step], model


def _generator(run: RunInfo, step: int | None) -> tuple[int, Path, object]:
    return _newest_generator(run) if step is None else _generator_at(run, step)


def checkpoint_of(run: RunInfo, step: int | None = None) -> tuple[int, Path]:
    """(step, directory) of the generator the run samples from: its best, or else the newest
    checkpoint whose generator loads; or the one of `step`.

    InputError if the run has no checkpoint, or none whose generator loads (or `step` is gone).
    """
    step, directory, _ = _generator(run, step)
    return step, directory


# Rows per model call. A backend's kernels may sum in another order at another batch size: on an AVX2
# EPYC, oneDNN's and Eigen's alike changed the last bits of a patch when the number of patches beside it
# in the call changed, while at one batch size a row's values did not depend on its place or on the
# other rows. So every call has exactly this many rows, the last padded with zeros: a cube's values then
# do not depend on `max_batch`, on the other cubes of its calls or on how `--workers` shares out the cubes.
CALL_ROWS = 8


def keras_generator(model, compiled: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """A Keras generator as `levels.make_level` calls it: float32 NumPy (B, ...) in and out.

    The one wrapper for trained (`load_generator`) and in-training
    (`evaluation.Evaluator`) generators alike, called with training=False on
    `CALL_ROWS` rows at a time (the results stay on the device until the batch is done),
    through the backend's compiled forward pass (`forward`; compiled=False: eagerly, the
    benchmark's reference).
    """
    from keras import ops

    from nbgan_app.sampling.forward import forward

    call = forward(model, compiled)

    def generate(x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n % CALL_ROWS:
            x = np.concatenate([x, np.zeros((-n % CALL_ROWS,) + x.shape[1:], x.dtype)])
        parts = [call(x[i:i + CALL_ROWS]) for i in range(0, len(x), CALL_ROWS)]
        return to_numpy(parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=0))[:n]

    return generate


def load_generator(run: RunInfo, step: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The generator of the checkpoint `checkpoint_of` names (that of `step`, if given), as a sampler callable."""
    _, _, model = _generator(run, step)
    return keras_generator(model)
