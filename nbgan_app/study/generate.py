"""Generating the study's cubes in memory with trained runs, timed.

A "step" is one trained run with its generator; a list of steps is a chain
run coarsest first: M3 (latents -> whole I3) or Mu (patch by patch from
nothing) or a given coarse level, then the up-scalers M2, M1 patch by patch.
The chain is planned and made exactly as `nbgan sample` makes it
(`sampling.plan_chain`, `sampling.sample_in_memory`), so a study's cubes are
the cubes `nbgan sample` writes for the same runs and seed. Everything stays
in transformed space until the last level, which becomes counts as in a
sample file (`sampling.particles`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nbgan_app.sampling.chain import RunInfo, plan_chain, sample_in_memory, with_latent_scales
from nbgan_app.sampling.particles import level_counts


@dataclass(frozen=True)
class Step:
    """A trained run, its generator (numpy in, numpy out) and the scale its latents are drawn with."""

    run: RunInfo
    generator: Callable[[np.ndarray], np.ndarray]
    latent_scale: float = 1.0


def load_step(path: Path, step: int | None = None) -> Step:
    """The run at `path` with the generator it samples from (its best, else its newest), or that of `step`,
    and the latent scale chosen for that generator (`nbgan_app.latent_scale`), as `nbgan sample` uses them."""
    from nbgan_app.latent_scale import scale_for
    from nbgan_app.sampling.runs import checkpoint_of, load_generator, load_run

    run = load_run(path)
    step = checkpoint_of(run, step)[0]
    return Step(run, load_generator(run, step), scale_for(path, step))


def run_steps(steps: list[Step], n_cubes: int, seed: int, coarse: np.ndarray | None = None,
              max_batch: int = 64) -> tuple[np.ndarray, float]:
    """(counts (n_cubes, S, S, S) of the last level, seconds) of a chain of steps.

    `coarse` is a given first level (n_cubes, s, s, s) in transformed space
    (`pyramid.level_of` of real cubes) for a chain that starts with an up-scaler.
    The patch order is the last run's `sample.order`.
    """
    started = time.perf_counter()
    runs = [step.run for step in steps]
    size = None if coarse is None else coarse.shape[1] * int(np.prod([r.config.factor(r.scale) for r in runs]))
    plans = plan_chain(runs, size, given_input=coarse is not None)
    plans = with_latent_scales(plans, runs, [step.latent_scale for step in steps])
    generators = [None] * (len(plans) - len(steps)) + [step.generator for step in steps]
    config = runs[-1].config
    level = sample_in_memory(plans, generators, n_cubes, given=coarse, seed=seed, order=config.sample.order,
                             max_batch=max_batch)
    counts = level_counts(level, config, plans[-1].level, plans[-1].patch, seed)
    return counts, time.perf_counter() - started
