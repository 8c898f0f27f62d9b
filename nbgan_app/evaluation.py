"""Statistics of a model's samples against held-out cubes, during training.

Every `train.eval_every` steps the trainer generates `train.eval_samples`
cubes at the scale's level and scores them against the held-out real cubes at
that level (`pyramid.level_of`, mapped back to counts), with the chain
`nbgan sample` runs (`sampling.sample_in_memory`):
- M3 draws whole cubes from latents;
- M2 and M1 up-scale the held-out cubes' coarser level, patch by patch (the
  thesis's conditional evaluation, as `nbgan upscale --from-fine`), each
  held-out cube in turn until they have made `eval_samples` (with 8 held-out
  cubes and 64 samples, 8 draws of each);
- Mu generates the level patch by patch from nothing.
The samples (counts) go to samples/latest.h5, their statistics and the real
ones to samples/latest_stats.json, and the scores into the metrics record,
with `monitor_error` (`best.monitor_error`). An evaluation that beats the
run's best so far writes its generator to best/ (`best.keep_if_best`), which
sampling then uses, unless its mean count is off by more than
`train.best_count_tolerance` (`best.within`; the record's `mean_count_ratio`).
A run resumed with another `eval_samples` scores its kept best again first
(`Evaluator.rescore_best`), so that it competes on equal terms.
Latents come from `sampling.noise` keyed by a seed of (train.seed, step), not
from the GAN's own seed state, so evaluating never changes what training draws next.
With `data.held_out = 0` there is nothing to score against, and the evaluation
is off: nothing is generated or written, and records carry the losses only.

A scale's `monitor_boxes = N` scores against N fresh PM boxes instead
(`monitor_cubes`, `study.quality.monitor_boxes`: seeds apart from the suite,
the validation boxes and the test boxes; cached in `<cache>-monitor`). The
held-out cubes stay out of training either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbgan_app import rundir, scales
from nbgan_app.best import keep_if_best, monitor_error, rescore
from nbgan_app.config import Config
from nbgan_app.cubes import write_cube
from nbgan_app.errors import InputError
from nbgan_app.pyramid import level_of
from nbgan_app.scales import Scale
from nbgan_app.transforms import backward


def monitor_cubes(config: Config, scale: str | Scale, held_out: np.ndarray, progress: bool = True) -> np.ndarray:
    """The count cubes a scale's monitor scores against: `held_out`, or the scale's `monitor_boxes` fresh PM
    boxes of the config's simulation (simulated once into `<cache>-monitor`)."""
    n = config.model(scale).monitor_boxes
    if not n:
        return held_out
    from nbgan_app.study.quality import monitor_boxes

    return monitor_boxes(config, n, progress)[0]


class Evaluator:
    """Called by the training monitor with (gan, step); returns the scores to log."""

    def __init__(self, config: Config, scale: str | Scale, held_out: np.ndarray, box_size: float, run_dir: Path):
        from nbgan_app.sampling.chain import RunInfo, plan_chain

        self.config, self.scale, self.box_size = config, scales.scale(scale), box_size
        self.run_dir = Path(run_dir)
        self.samples = self.run_dir / rundir.SAMPLES
        self.enabled = len(held_out) > 0
        if not self.enabled:
            return
        side = self.scale.side(config.pyramid)
        self.real = backward(level_of(config, held_out, side), config.transform)
        self.real_mean = np.mean(self.real)  # counts per voxel, for `_mean_ratio`
        self.n = config.train.eval_samples
        self.plans = plan_chain([RunInfo(Path(run_dir), self.scale.name, config)],
                                given_input=self.scale.conditional)
        self.given = None
        if self.scale.conditional:
            # the held-out cubes' coarser level, taken in turn: with more samples than held-out cubes,
            # each is up-scaled several times, with other latents (one draw a cube left the error noisy)
            coarse = level_of(config, held_out[:self.n], self.plans[0].side)  # no more cubes than samples
            self.given = coarse[np.arange(self.n) % len(coarse)]

    def __call__(self, gan, step: int) -> dict:
        from nbgan_app.sampling.runs import keras_generator
        from nbgan_app.stats.summary import summary

        if not self.enabled:
            return {}
        fake, scores = self._score(keras_generator(gan.generator), step)
        self.samples.mkdir(exist_ok=True)
        write_cube(self.samples / rundir.LATEST_SAMPLES, fake, self.box_size, overwrite=True, step=step)
        stats = {"step": step, "real": summary(self.real, self.box_size), "fake": summary(fake, self.box_size)}
        record = {}
        if scores is not None:
            stats["scores"] = scores
            record = flat_scores(scores)
            record["mean_count_ratio"] = self._mean_ratio(fake)
            error = monitor_error(record)
            if error is not None:
                record["monitor_error"] = error
                keep_if_best(self.run_dir, gan.generator, step, error, self.n, record["mean_count_ratio"],
                             self.config.train.best_count_tolerance)
        rundir.write_json_atomic(self.samples / rundir.LATEST_STATS, stats)
        return record

    def rescore_best(self) -> None:
        """Score the run's kept best again when its error came from another number of monitor samples
        (or its mean counts were not recorded).

        Errors from 8 cubes and from 64 are not comparable (the fewer, the noisier: one M3's error
        spanned 0.18-0.47 over sampling seeds with 8), so a run resumed under a new `eval_samples`
        first puts its best on the new footing (`best.rescore`), with the seed of its own step.
        """
        from nbgan_app.sampling.chain import RunInfo
        from nbgan_app.sampling.runs import load_generator

        if not self.enabled:
            return

        def score(step: int) -> tuple[float, float] | None:
            try:
                generator = load_generator(RunInfo(self.run_dir, self.scale.name, self.config), step)
            except InputError:  # a damaged best: sampling passes it over and says so, training need not
                return None
            fake, scores = self._score(generator, step)
            error = monitor_error(flat_scores(scores or {}))
            return None if error is None else (error, self._mean_ratio(fake))

        rescore(self.run_dir, self.n, score)

    def _mean_ratio(self, fake: np.ndarray) -> float:
        """The generated cubes' mean count over the monitor cubes' (1: no particles added or lost)."""
        return float(np.mean(fake) / self.real_mean)

    def _score(self, generator, step: int) -> tuple[np.ndarray, dict | None]:
        """(the monitor's cubes of `generator` (numpy in, numpy out), in counts; their `compare` scores,
        None with too few cubes). The latents' seed is the step's."""
        from nbgan_app.sampling.chain import sample_in_memory
        from nbgan_app.sampling.particles import level_counts
        from nbgan_app.stats.scores import compare

        seed = self.config.train.seed * 1_000_003 + step
        generators = [None] * (len(self.plans) - 1) + [generator]
        level = sample_in_memory(self.plans, generators, self.n, given=self.given, seed=seed, order="wavefront",
                                 max_batch=self.config.sample.max_batch)
        fake = level_counts(level, self.config, self.plans[-1].level, self.plans[-1].patch, seed)
        if len(self.real) < 2 or len(fake) < 2:
            return fake, None
        return fake, compare(self.real, fake, self.box_size)


def flat_scores(scores: dict) -> dict:
    """The headline numbers of a `stats.scores.compare` result as flat metric keys."""
    out = {}
    for name, values in scores.get("fake", scores).items():
        if isinstance(values, dict):
            for key in ("score", "log_l2"):
                if isinstance(values.get(key), (int, float)):
                    out[f"{name}_{key}"] = float(values[key])
            # the median fractional error beside its real-vs-real floor: the figure a user can read
            if isinstance(values.get("median_abs_frac_diff"), (int, float)):
                out[f"{name}_median_abs_frac_diff"] = float(values["median_abs_frac_diff"])
            floor = (values.get("floor") or {}).get("median_abs_frac_diff")
            if isinstance(floor, dict) and isinstance(floor.get("mean"), (int, float)):
                out[f"{name}_floor_median_abs_frac_diff"] = float(floor["mean"])
    return out
