"""Generating the study's cubes in memory with trained runs, timed.

A "step" is one trained run with its generator; a list of steps is a chain
run coarsest first: M3 (latents -> whole I3) or Mu (patch by patch from
nothing) or a given coarse level, then the up-scalers M2, M1 patch by patch
with the same `PatchSampler` that `nbgan sample` and training evaluation
use. Everything stays in transformed space until the last level, which
`to_counts` maps back with the runs' backward transform.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nbgan_app import scales
from nbgan_app.evaluation import ArrayTarget
from nbgan_app.sampling.chain import RunInfo
from nbgan_app.transforms import backward


@dataclass(frozen=True)
class Step:
    """A trained run and its generator (numpy in, numpy out)."""

    run: RunInfo
    generator: Callable[[np.ndarray], np.ndarray]
    latent_dim: int | None = None


def load_step(path: Path) -> Step:
    """The run at `path` with the generator of its latest checkpoint."""
    from nbgan_app.sampling.runs import load_generator, load_run

    run = load_run(path)
    scale = scales.scale(run.scale)
    latent_dim = run.config.model(scale).latent_dim if scale.whole_cube else None
    return Step(run, load_generator(run), latent_dim)


def make_level(step: Step, n_cubes: int, seed: int, coarse: np.ndarray | None = None,
               max_batch: int = 64) -> np.ndarray:
    """One level (n_cubes, S, S, S) in transformed space: whole cubes for M3, patch by patch otherwise."""
    from nbgan_app.sampling.sampler import PatchSampler

    config, scale = step.run.config, scales.scale(step.run.scale)
    level = scale.level
    if scale.whole_cube:
        rng = np.random.default_rng([seed, level])
        latent = rng.standard_normal((n_cubes, step.latent_dim), dtype=np.float32)
        return np.concatenate([np.asarray(step.generator(latent[i:i + max_batch]))[..., 0]
                               for i in range(0, n_cubes, max_batch)])
    target = ArrayTarget(n_cubes, scale.side(config.pyramid), config.pyramid.patch)
    factor = scale.factor(config.pyramid)
    sampler = PatchSampler(step.generator, order=config.sample.order, max_batch=max_batch, seed=seed,
                           level=level, factor=factor)
    sampler.sample(target, n_cubes, coarse if factor else None)
    return target.values


def run_steps(steps: list[Step], n_cubes: int, seed: int, coarse: np.ndarray | None = None,
              max_batch: int = 64) -> tuple[np.ndarray, float]:
    """(counts of the last level, seconds) of a chain of steps; `coarse` is a given first input level."""
    started = time.perf_counter()
    level = coarse
    for step in steps:
        level = make_level(step, n_cubes, seed, level, max_batch)
    counts = backward(level, steps[-1].run.config.transform)
    return counts, time.perf_counter() - started
