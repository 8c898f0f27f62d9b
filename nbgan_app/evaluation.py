"""Statistics of a model's samples against held-out cubes, during training.

Every `train.eval_every` steps the trainer generates `train.eval_samples`
cubes at the scale's level and scores them against the held-out real cubes at
that level (the pyramid's block means, mapped back to counts):
- M3 draws whole cubes from latents;
- M2 and M1 up-scale the held-out cubes' coarser level, patch by patch (the
  thesis's conditional evaluation), with the same sampler `nbgan sample` uses;
- Mu generates the level patch by patch from nothing.
The samples (counts) go to samples/latest.h5, their statistics and the real
ones to samples/latest_stats.json, and the scores into the metrics record.
Latents come from NumPy generators keyed by (seed, step), not from the GAN's
own seed state, so evaluating never changes what training draws next.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbgan_app import rundir, scales
from nbgan_app.config import Config
from nbgan_app.scales import Scale
from nbgan_app.cubes import write_cube
from nbgan_app.pyramid import block_mean
from nbgan_app.transforms import backward, forward


class ArrayTarget:
    """An in-memory level (N, S...) for the patch sampler (the file-backed one is `sampling.writer`)."""

    def __init__(self, n_cubes: int, side: int, patch: int, ndim: int = 3):
        from nbgan_app.sampling.writer import DatasetSpec

        self.spec = DatasetSpec("data", side, patch, ndim)
        self.values = np.zeros((n_cubes,) + (side,) * ndim, np.float32)
        self._done = np.zeros((self.spec.n,) * ndim, bool)

    def _region(self, cube, index):
        p = self.spec.patch
        return (cube,) + tuple(slice(i * p, (i + 1) * p) for i in index)

    def write(self, cube, index, values):
        self.values[self._region(cube, index)] = values

    def read(self, cube, index):
        return self.values[self._region(cube, index)]

    def is_done(self, index):
        return bool(self._done[index])

    def mark_done(self, indices):
        for index in indices:
            self._done[index] = True


def generator_callable(generator):
    """numpy in, numpy out, inference mode."""
    from keras import ops

    return lambda x: ops.convert_to_numpy(generator(x, training=False))


def level_of(config: Config, counts: np.ndarray, side: int) -> np.ndarray:
    """Transformed cubes block-averaged to `side` voxels per axis."""
    return block_mean(forward(counts, config.transform), config.pyramid.sizes[0] // side)


def generate_level(config: Config, scale: str | Scale, generator, held_out: np.ndarray, n: int,
                   seed: int) -> np.ndarray:
    """`n` transformed cubes at the scale's level (see module docstring)."""
    from nbgan_app.sampling.sampler import PatchSampler

    scale = scales.scale(scale)
    side = scale.side(config.pyramid)
    call = generator_callable(generator)
    if scale.whole_cube:
        latent_dim = generator.input_shape[-1]
        latent = np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)
        return call(latent)[..., 0]
    target = ArrayTarget(n, side, config.pyramid.patch)
    coarse = None
    factor = scale.factor(config.pyramid)
    if scale.conditional:
        coarse = level_of(config, held_out[:n], side // factor)
    sampler = PatchSampler(call, order="wavefront", max_batch=config.sample.max_batch, seed=seed, factor=factor)
    sampler.sample(target, n, coarse)
    return target.values


class Evaluator:
    """Called by the training monitor with (gan, step); returns the scores to log."""

    def __init__(self, config: Config, scale: str | Scale, held_out: np.ndarray, box_size: float, run_dir: Path):
        self.config, self.scale, self.box_size = config, scales.scale(scale), box_size
        self.held_out = held_out
        self.samples = Path(run_dir) / rundir.SAMPLES
        side = self.scale.side(config.pyramid)
        self.real = backward(level_of(config, held_out, side), config.transform)
        # an up-scaler conditions each sample on one held-out cube, so it makes no more than there are
        self.n = (min(config.train.eval_samples, len(held_out)) if self.scale.conditional
                  else config.train.eval_samples)

    def __call__(self, gan, step: int) -> dict:
        from nbgan_app.stats.scores import compare
        from nbgan_app.stats.summary import summary

        seed = self.config.train.seed * 1_000_003 + step
        fake = backward(generate_level(self.config, self.scale, gan.generator, self.held_out, self.n, seed),
                        self.config.transform)
        self.samples.mkdir(exist_ok=True)
        write_cube(self.samples / rundir.LATEST_SAMPLES, fake, self.box_size, overwrite=True, step=step)
        stats = {"step": step, "real": summary(self.real, self.box_size), "fake": summary(fake, self.box_size)}
        record = {}
        if len(self.real) >= 2 and len(fake) >= 2:
            scores = compare(self.real, fake, self.box_size)
            stats["scores"] = scores
            record = flat_scores(scores)
        rundir.write_json_atomic(self.samples / rundir.LATEST_STATS, stats)
        return record


def flat_scores(scores: dict) -> dict:
    """The headline numbers of a `stats.scores.compare` result as flat metric keys."""
    out = {}
    for name, values in scores.get("fake", scores).items():
        if isinstance(values, dict):
            for key in ("score", "log_l2"):
                if isinstance(values.get(key), (int, float)):
                    out[f"{name}_{key}"] = float(values[key])
    return out
