"""Checkpoints that restore training exactly: every variable, written then renamed.

A checkpoint is a directory `checkpoints/step-<N>/` in the run directory with
    state.npz        every variable of the GAN (both networks, the seed state
                     of its random draws) and of both optimizers, by position
    generator.keras  the generator alone, architecture and weights, for sampling
                     (the moving average of its weights when training keeps one)
    meta.json        step, time, backend
It is written under a hidden temporary name, flushed to the disk and renamed
when complete, so a process killed at any moment leaves either the whole
checkpoint or none.

A checkpoint can still be damaged after the rename: a truncated copy, a disk
that filled up or lost power under another writer. So readers check what
they read and say why a checkpoint cannot be used (`DamagedCheckpoint`), and
the run falls back to the newest checkpoint that can: training through
`restore_newest`, sampling through `sampling.runs.checkpoint_of`. For that
fallback to exist, more than one checkpoint is kept (`KEEP`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from nbgan_app.rundir import CHECKPOINTS

_NAME = re.compile(r"^step-(\d+)$")
STATE_FILE = "state.npz"
GENERATOR_FILE = "generator.keras"
META_FILE = "meta.json"
# At least 2: when the newest checkpoint is damaged, a resume or a sampler falls back on the one
# before it, which must still be there. 3 leave that fallback one spare: a run that resumed past a
# damaged checkpoint still holds 2 good ones (the damaged one is not counted, see `save_checkpoint`).
KEEP = 3
# what reading a damaged archive raises: numpy's EOFError (empty file) and ValueError, zipfile's
# BadZipFile (truncated, bad CRC), zlib's error (a compressed member cut short), OSError, KeyError
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


class DamagedCheckpoint(Exception):
    """A checkpoint that cannot be used; the message (one line) says which file and why."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def describe(exc: BaseException, limit: int = 160) -> str:
    """An exception as `Type: message`, on one line, cut to `limit` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def training_variables(gan) -> list:
    """The variables a checkpoint holds, in a fixed order (deduplicated)."""
    seen, out = set(), []
    for v in list(gan.variables) + list(gan.d_optimizer.variables) + list(gan.g_optimizer.variables):
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def list_checkpoints(run_dir: Path, folder: str = CHECKPOINTS) -> list[tuple[int, Path]]:
    """Checkpoints of a run as (step, path), oldest first (complete when written; see `DamagedCheckpoint`).

    `folder`: the run directory's folder of step-<N> directories (`best.BEST` holds the best generator's).
    """
    root = Path(run_dir) / folder
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to the disk, so a rename never publishes empty files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a directory; the files themselves were synced
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def publish_step(root: Path, step: int, write: Callable[[Path], None], names: Collection[str]) -> Path:
    """Write the directory `root`/step-<step> atomically and return it.

    `write(tmp)` fills a hidden temporary directory; its files `names` are
    flushed to disk, then it replaces any directory of that step, so a process
    killed at any moment leaves the whole directory or none.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    for name in names:
        fsync(tmp / name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync(root)
    return final


def save_checkpoint(run_dir: Path, gan, step: int, backend: str, damaged: Collection[int] = ()) -> Path:
    """Write checkpoint `step` atomically, then keep the newest KEEP good ones.

    `damaged` are steps whose checkpoints are known not to load (`restore_newest`):
    they do not count as kept, and one is deleted only once KEEP good checkpoints
    are newer than it (one at `step` itself is replaced by this one).
    """
    import keras

    def write(tmp: Path) -> None:
        values = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(training_variables(gan))}
        np.savez(tmp / STATE_FILE, **values)
        with gan.sampling_weights() as generator:  # the moving average where one is kept
            generator.save(tmp / GENERATOR_FILE)
        (tmp / META_FILE).write_text(json.dumps({"step": step, "time": time.time(), "backend": backend}))

    final = publish_step(Path(run_dir) / CHECKPOINTS, step, write, (STATE_FILE, GENERATOR_FILE, META_FILE))
    _sweep(run_dir, set(damaged) - {step})
    return final


def _sweep(run_dir: Path, damaged: set[int]) -> None:
    """Delete checkpoints older than the KEEP-th newest good one (damaged ones are not good)."""
    found = list_checkpoints(run_dir)
    good = [step for step, _ in found if step not in damaged]
    if len(good) <= KEEP:
        return
    oldest_kept = good[-KEEP]
    for step, path in found:
        if step < oldest_kept:
            shutil.rmtree(path, ignore_errors=True)


def read_state(path: Path) -> list[np.ndarray]:
    """Every array of a checkpoint's state.npz, in variable order; DamagedCheckpoint if it cannot be read whole."""
    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise DamagedCheckpoint(f"{STATE_FILE} is missing")
    try:
        with np.load(file, allow_pickle=False) as saved:
            names = [f"v{i:05d}" for i in range(len(saved.files))]
            if sorted(saved.files) != names:
                raise DamagedCheckpoint(f"{STATE_FILE} does not hold the variables v00000... in order")
            return [saved[name] for name in names]  # reading each member checks its CRC
    except _READ_ERRORS as exc:
        raise DamagedCheckpoint(f"{STATE_FILE} is unreadable: {describe(exc)}") from None


def restore_checkpoint(path: Path, gan) -> None:
    """Assign every saved variable back; the GAN and its optimizers must be built.

    Everything is read and checked against the model before anything is
    assigned, so a DamagedCheckpoint (unreadable, or of another model: another
    number or shape of variables) leaves the GAN as it was.
    """
    variables = training_variables(gan)
    values = read_state(path)
    if len(values) != len(variables):
        raise DamagedCheckpoint(f"{STATE_FILE} holds {len(values)} variables, the model has {len(variables)}: "
                                f"a checkpoint of another model")
    for i, (variable, value) in enumerate(zip(variables, values)):
        if tuple(value.shape) != tuple(variable.shape):
            raise DamagedCheckpoint(f"{STATE_FILE} variable {i} ({variable.path}) has shape {tuple(value.shape)}, "
                                    f"the model's has {tuple(variable.shape)}: a checkpoint of another model")
    for variable, value in zip(variables, values):
        variable.assign(value)


def check_generator_file(path: Path) -> None:
    """DamagedCheckpoint unless the checkpoint's generator.keras is a whole Keras archive (every CRC checked).

    Cheap next to loading the model, and what a truncated or partly overwritten file fails.
    """
    file = Path(path) / GENERATOR_FILE
    if not file.is_file():
        raise DamagedCheckpoint(f"{GENERATOR_FILE} is missing")
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except _READ_ERRORS as exc:
        raise DamagedCheckpoint(f"{GENERATOR_FILE} is not a readable Keras archive: {describe(exc)}") from None
    if bad is not None:
        raise DamagedCheckpoint(f"{GENERATOR_FILE} is damaged: bad CRC in {bad}")
    missing = sorted({"config.json", "model.weights.h5"} - names)
    if missing:
        raise DamagedCheckpoint(f"{GENERATOR_FILE} lacks {missing[0]}")


def check_meta(path: Path, step: int) -> None:
    """DamagedCheckpoint unless meta.json is readable and names `step`."""
    try:
        meta = json.loads((Path(path) / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DamagedCheckpoint(f"{META_FILE} is unreadable: {describe(exc)}") from None
    if not isinstance(meta, dict) or meta.get("step") != step:
        raise DamagedCheckpoint(f"{META_FILE} does not name step {step}")


def note(message: str) -> None:
    """One line on stderr about a fallback the user should know of (a damaged checkpoint)."""
    print(" ".join(message.split()), file=sys.stderr, flush=True)


def fallback_note(run_dir: Path, skipped: list[tuple[int, str]], action: str) -> str:
    """The one line that names the checkpoints skipped, newest first, with why, and what happens instead."""
    if len(skipped) == 1:
        (step, reason), = skipped
        return f"run {run_dir}: checkpoint {step_name(step)} cannot be used ({reason}); {action}"
    names = ", ".join(step_name(step) for step, _ in skipped)
    reasons = "; ".join(f"{step_name(step)}: {reason}" for step, reason in skipped)
    return f"run {run_dir}: checkpoints {names} cannot be used ({reasons}); {action}"


def restore_newest(run_dir: Path, gan) -> tuple[int, list[tuple[int, str]]]:
    """Restore the newest checkpoint that loads into `gan`: (its step or 0, the (step, reason) skipped).

    Newer checkpoints that cannot be restored (state.npz unreadable or of
    another model) are skipped, newest first, and left on disk. With
    checkpoints but none that loads, raises DamagedCheckpoint naming the newest.
    """
    skipped: list[tuple[int, str]] = []
    found = list_checkpoints(run_dir)
    for step, path in reversed(found):
        try:
            restore_checkpoint(path, gan)
        except DamagedCheckpoint as exc:
            skipped.append((step, str(exc)))
            continue
        return step, skipped
    if skipped:
        newest, reason = skipped[0]
        raise DamagedCheckpoint(f"none of its {len(skipped)} checkpoints can be restored "
                                f"(newest {step_name(newest)}: {reason})")
    return 0, skipped


def clean_partial(run_dir: Path) -> None:
    """Remove temporary checkpoint directories left by a killed process."""
    root = Path(run_dir) / CHECKPOINTS
    if root.is_dir():
        for p in root.glob(".step-*.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
