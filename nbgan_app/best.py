"""A run's best generator by monitor error: the one sampling uses.

GAN training does not improve monotonically. The demo's M1, for one, was best
on the monitor cubes at step 1500 and several times worse by step 2500 (see
docs/quality.md), so the newest checkpoint is often not the one to sample from.

Every evaluation during training (`evaluation.Evaluator`) scores the
generator against the monitor cubes, the run's held-out training cubes. Its
`monitor_error` is the mean over the power spectrum, the mass histogram and
the peak histogram of the median |fake mean / real mean - 1| over bins.
When an evaluation beats the run's best so far, its generator (the weights
sampling uses, the moving average where one is kept) is written to

    best/step-<N>/generator.keras
    best/step-<N>/meta.json        {"step": N, "monitor_error": e, "time": t, "eval_samples": n}

under a temporary name, renamed into place, and only then are the older
bests removed. Each new best has a lower error than every older one, so a
reader that takes the lowest error is right even between those two moves.
The training state is untouched: a resumed run is still exact.

An error is only comparable with errors from as many generated cubes (`n`,
`train.eval_samples` or, for an up-scaler, the monitor boxes). A run resumed
with another `n` scores its kept best again first (`rescore`); a best whose
meta.json records no `n` (written before runs recorded it) is scored again once.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

from nbgan_app import checkpoints
from nbgan_app.rundir import write_json_atomic

BEST = "best"
# the statistics whose errors make up the monitor error (`stats.registry` names)
STATISTICS = ("psd", "mass_hist", "peak_hist")


def monitor_error(record: dict) -> float | None:
    """The mean median |fractional error| of an evaluation's metrics record; None if one is missing or not finite."""
    values = [record.get(f"{name}_median_abs_frac_diff") for name in STATISTICS]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return float(sum(values) / len(values))


def read_best(run_dir: Path) -> tuple[int, Path, float] | None:
    """(step, directory, monitor error) of the run's best generator, or None when it has none.

    Among several (an interrupted replacement) the lowest error wins; a
    directory without a readable meta.json is ignored.
    """
    found = []
    for step, directory in checkpoints.list_checkpoints(run_dir, BEST):
        try:
            meta = json.loads((directory / checkpoints.META_FILE).read_text())
            error = float(meta["monitor_error"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append((error, step, directory))
    if not found:
        return None
    error, step, directory = min(found)
    return step, directory, error


def keep_if_best(run_dir: Path, generator, step: int, error: float, samples: int | None = None) -> bool:
    """Write `generator` as the run's best when `error` (from `samples` generated cubes) is below the best
    so far; True if it was written."""
    current = read_best(run_dir)
    if current is not None and error >= current[2]:
        return False

    def write(tmp: Path) -> None:
        generator.save(tmp / checkpoints.GENERATOR_FILE)
        meta = {"step": step, "monitor_error": error, "time": time.time(), "eval_samples": samples}
        (tmp / checkpoints.META_FILE).write_text(json.dumps(meta))

    # a resumed run re-evaluating the same step replaces that step's directory
    final = checkpoints.publish_step(Path(run_dir) / BEST, step, write,
                                     (checkpoints.GENERATOR_FILE, checkpoints.META_FILE))
    for _, older in checkpoints.list_checkpoints(run_dir, BEST):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    return True


def rescore(run_dir: Path, samples: int, score: Callable[[int], float | None]) -> float | None:
    """Put the kept best's error on the footing of `samples` generated cubes.

    When its meta.json records another number (or none), `score(step)` gives the
    best generator's error anew; it replaces the recorded one, which stays in
    meta.json as `earlier_error` (with `earlier_eval_samples`), written
    atomically. Returns the new error, or None when there was nothing to do
    (no best, the same number, or `score` returned None).
    """
    current = read_best(run_dir)
    if current is None:
        return None
    step, directory, _ = current
    meta_path = directory / checkpoints.META_FILE
    meta = json.loads(meta_path.read_text())
    if meta.get("eval_samples") == samples:
        return None
    error = score(step)
    if error is None:
        return None
    meta.update(earlier_error=meta["monitor_error"], earlier_eval_samples=meta.get("eval_samples"),
                monitor_error=error, eval_samples=samples)
    write_json_atomic(meta_path, meta)
    return error
