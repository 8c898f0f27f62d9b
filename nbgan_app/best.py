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
    best/step-<N>/meta.json        {"step": N, "monitor_error": e, "time": t, "eval_samples": n,
                                    "mean_count_ratio": m}

under a temporary name, renamed into place, and only then are the older
bests removed. The training state is untouched: a resumed run is still exact.

Mean counts are guarded apart from the error. `m` is the generated cubes'
mean count over the monitor cubes'. A generator that adds or loses particles
shifts every bin a little and the tails in its favour, so the three median
errors barely see it: the demo's M1 at 6% too many particles scored better
than one within 1%, and lost the chain's power spectrum (docs/quality.md).
An evaluation whose |m - 1| exceeds the tolerance (`train.best_count_tolerance`)
never becomes the best, and a kept best outside it (one scored again after a
resume under a tighter tolerance) gives way to the next evaluation within it,
whatever its error. Otherwise each new best has a lower error than every
older one, so a reader that takes the lowest error is right even between the
rename and the removal.

An error is only comparable with errors from as many generated cubes (`n`,
`train.eval_samples` or, for an up-scaler, the monitor boxes). A run resumed
with another `n` scores its kept best again first (`rescore`); a best whose
meta.json records no `n` or no `m` (written before runs recorded them) is
scored again once.
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


def within(ratio: float | None, tolerance: float) -> bool:
    """Whether mean counts `ratio` times the monitor cubes' pass a guard of `tolerance` (0: no guard).

    An unrecorded ratio passes: it is only missing from bests kept before runs
    recorded it, and those are scored again on resume (`rescore`).
    """
    return tolerance <= 0 or ratio is None or abs(ratio - 1.0) <= tolerance


def read_best(run_dir: Path) -> tuple[int, Path, float] | None:
    """(step, directory, monitor error) of the run's best generator, or None when it has none.

    Among several (an interrupted replacement) the lowest error wins, which is
    the outgoing best only when that one failed the mean-count guard; a
    directory without a readable meta.json is ignored.
    """
    found = _best_with_meta(run_dir)
    return None if found is None else found[:3]


def read_best_meta(run_dir: Path) -> dict | None:
    """The parsed meta.json of the best `read_best` chooses, or None when the run has none (or its best/
    cannot be listed): for readers, like the dashboard, that must never fail on a run directory."""
    try:
        found = _best_with_meta(run_dir)
    except OSError:  # best/ vanished or became unreadable between its check and its listing
        return None
    return None if found is None else found[3]


def _best_with_meta(run_dir: Path) -> tuple[int, Path, float, dict] | None:
    """`read_best`'s choice with its parsed meta.json, read once."""
    found = []
    for step, directory in checkpoints.list_checkpoints(run_dir, BEST):
        try:
            meta = json.loads((directory / checkpoints.META_FILE).read_text())
            error = float(meta["monitor_error"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append((error, step, directory, meta))
    if not found:
        return None
    error, step, directory, meta = min(found, key=lambda f: f[:3])
    return step, directory, error, meta


def keep_if_best(run_dir: Path, generator, step: int, error: float, samples: int | None = None,
                 mean_ratio: float | None = None, tolerance: float = 0.0) -> bool:
    """Write `generator` as the run's best when `error` (from `samples` generated cubes whose mean count is
    `mean_ratio` times the monitor cubes') is below the best so far and its mean counts pass the guard of
    `tolerance` (`within`); a best so far outside the guard is beaten by any candidate within it. True if
    it was written."""
    if not within(mean_ratio, tolerance):
        return False
    current = _best_with_meta(run_dir)
    if current is not None and error >= current[2] and within(current[3].get("mean_count_ratio"), tolerance):
        return False

    def write(tmp: Path) -> None:
        generator.save(tmp / checkpoints.GENERATOR_FILE)
        meta = {"step": step, "monitor_error": error, "time": time.time(), "eval_samples": samples,
                "mean_count_ratio": mean_ratio}
        (tmp / checkpoints.META_FILE).write_text(json.dumps(meta))

    # a resumed run re-evaluating the same step replaces that step's directory
    final = checkpoints.publish_step(Path(run_dir) / BEST, step, write,
                                     (checkpoints.GENERATOR_FILE, checkpoints.META_FILE))
    for _, older in checkpoints.list_checkpoints(run_dir, BEST):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    return True


def rescore(run_dir: Path, samples: int,
            score: Callable[[int], tuple[float, float] | None]) -> tuple[float, float] | None:
    """Put the kept best's error on the footing of `samples` generated cubes, with its mean counts.

    When its meta.json records another number of cubes (or none), or no mean
    count ratio, `score(step)` gives the best generator's (error, mean count
    ratio) anew; they replace the recorded ones, and the earlier error stays in
    meta.json as `earlier_error` (with `earlier_eval_samples`), written
    atomically. Whether the best still passes the mean-count guard is decided
    by `keep_if_best` from the recorded ratio. Returns the new pair, or None
    when there was nothing to do (no best, the same footing, or `score`
    returned None).
    """
    current = _best_with_meta(run_dir)
    if current is None:
        return None
    step, directory, _, meta = current
    if meta.get("eval_samples") == samples and meta.get("mean_count_ratio") is not None:
        return None
    scored = score(step)
    if scored is None:
        return None
    error, ratio = scored
    meta.update(earlier_error=meta["monitor_error"], earlier_eval_samples=meta.get("eval_samples"),
                monitor_error=error, eval_samples=samples, mean_count_ratio=ratio)
    write_json_atomic(directory / checkpoints.META_FILE, meta)
    return error, ratio
