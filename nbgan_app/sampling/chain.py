"""A chain of levels, coarsest first, and running it into one sample file or into memory.

The coarsest level is made whole by M3 (from a latent vector per cube) or, for
sizes beyond what M3 makes whole, patch by patch by a uni-scale model Mu
(neighbours and latent only). Each following level is an up-scaler (M2, M1)
conditioned on the level before it, which it reads back from the file (or array).
`plan_chain` turns the runs' scales and configs into sides and patch sizes
and rejects chains that do not fit together or whose runs saw other cubes
(box size, data, transform, pyramid: InputError naming the setting); its level numbers
key the noise, so every caller that plans through it draws the same cubes.
`run_chain` makes the levels one by one with `levels.make_level`, into a
sample file or, through `sample_in_memory`, into arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nbgan_app import scales
from nbgan_app.config import Config
from nbgan_app.errors import InputError
from nbgan_app.sampling.levels import ArrayLevels, LevelPlan, give_level, make_level
from nbgan_app.sampling.writer import DatasetSpec, SampleFile


@dataclass(frozen=True)
class RunInfo:
    """One trained run of a chain: its directory, scale name ("3", "2", "1", "uni") and resolved config."""

    path: Path
    scale: str
    config: Config


def run_box_size(run: RunInfo) -> float | None:
    """Box side in Mpc/h of the full-resolution cubes the run was trained on, or None if unknown.

    The config's declared box (`DataConfig.declared_box_size`), else the
    `box_size` attribute of the first cube file in its `data.dir` (training
    needs one of the two; the directory may since have gone, then None).
    """
    declared = run.config.data.declared_box_size()
    if declared is not None or run.config.data.dir is None:
        return declared
    from nbgan_app.cubes import list_cube_files, read_box_size

    try:
        return read_box_size(list_cube_files([run.config.resolve(run.config.data.dir)])[0])
    except (InputError, OSError, KeyError):
        return None


def _source_kind(config: Config) -> str:
    data = config.data
    return "a [data.simulation] suite" if data.simulation is not None else f"data.dir {config.resolve(data.dir)}"


def _data_source(config: Config) -> dict[str, object]:
    """What decides which cubes a run was trained on, by dotted config key.

    A simulation suite by its settings (not where its cache lies, nor which
    of its cubes `held_out` kept for scoring), a directory by its resolved path.
    """
    data = config.data
    if data.simulation is None:
        return {"data.dir": str(config.resolve(data.dir)) if data.dir is not None else None}
    return {f"data.simulation.{f.name}": getattr(data.simulation, f.name)
            for f in dataclasses.fields(data.simulation) if f.name != "cache"}


def _settings(config: Config, section: str) -> dict[str, object]:
    """The fields of config section `section` ("transform", "pyramid") by dotted key."""
    value = getattr(config, section)
    return {f"{section}.{f.name}": getattr(value, f.name) for f in dataclasses.fields(value)}


def _shown(value) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _disagreement(a: RunInfo, b: RunInfo, facts: dict[str, object], other: dict[str, object]) -> None:
    for key in facts:
        if facts[key] != other.get(key):
            raise InputError(f"runs {a.path} and {b.path} disagree on {key}: "
                             f"{_shown(facts[key])} vs {_shown(other.get(key))}")


def _check_consistent(runs: list[RunInfo]) -> None:
    """Every run of a chain must see the same physical cubes: box size, data, transform and pyramid.

    Raises InputError naming the first differing setting and its two values.
    A uni-scale head (Mu) may have its own pyramid: it only makes patches,
    at whatever size the chain asks of it.
    """
    first = runs[0]
    for run in runs[1:]:
        boxes = [r.config.data.declared_box_size() for r in (first, run)]
        if boxes[0] != boxes[1]:  # a directory's files may carry the box the config leaves open
            boxes = [run_box_size(r) for r in (first, run)]
            if None not in boxes and boxes[0] != boxes[1]:
                raise InputError(f"runs {first.path} and {run.path} disagree on box_size: "
                                 f"{boxes[0]:g} vs {boxes[1]:g} Mpc/h")
        if (first.config.data.simulation is None) != (run.config.data.simulation is None):
            raise InputError(f"runs {first.path} and {run.path} disagree on data: {_source_kind(first.config)} "
                             f"vs {_source_kind(run.config)}")
        _disagreement(first, run, _data_source(first.config), _data_source(run.config))
        _disagreement(first, run, _settings(first.config, "transform"), _settings(run.config, "transform"))
    pyramid_runs = [r for r in runs if scales.scale(r.scale) in scales.CHAIN]
    for run in pyramid_runs[1:]:
        _disagreement(pyramid_runs[0], run, _settings(pyramid_runs[0].config, "pyramid"),
                      _settings(run.config, "pyramid"))


def _check_order(runs: list[RunInfo], given_input: bool) -> None:
    order = [scales.scale(r.scale) for r in runs]
    # a given input level can only be up-scaled; otherwise the head makes its level from nothing
    heads = scales.UPSCALERS if given_input else tuple(s for s in scales.ALL if not s.conditional)
    if order[0] not in heads:
        raise InputError(f"run {runs[0].path} has scale {order[0]}; the chain must start with "
                         f"scale {' or '.join(s.name for s in heads)}")
    for k, scale in enumerate(order):
        if scale in order[:k]:
            first = runs[order.index(scale)]
            raise InputError(f"chain scales {','.join(s.name for s in order)}: runs {first.path} and "
                             f"{runs[k].path} both have scale {scale}; a chain takes each scale once, coarse to fine")
    rest = order[1:]
    levels = [s.level for s in rest]
    if any(not s.conditional for s in rest) or levels != sorted(set(levels), reverse=True):
        raise InputError(f"chain scales {','.join(s.name for s in order)}: after the first run expected "
                         f"{' then '.join(s.name for s in scales.UPSCALERS)} (coarse to fine)")
    # an up-scaler is conditioned on the level just above its own; only Mu makes a level of any number
    for k in range(1, len(order)):
        made = order[k - 1].level if order[k - 1] is not scales.MU else None
        if made is not None and order[k].level != made - 1:
            missing = [s for s in scales.CHAIN if order[k].level < s.level < made]
            raise InputError(f"chain scales {','.join(s.name for s in order)}: scale "
                             f"{' and '.join(s.name for s in missing)} is missing between run {runs[k - 1].path} "
                             f"({order[k - 1].title}, level {made}) and run {runs[k].path} ({order[k].title}, "
                             f"which up-scales level {order[k].level + 1})")


def plan_chain(runs: list[RunInfo], size: int | None = None, given_input: bool = False) -> list[LevelPlan]:
    """Levels of a chain of runs, coarsest first; with `given_input` the coarsest level is read, not made.

    `size` is the output side (default: what the last run was trained at).
    Raises InputError for mismatched runs or a size the patch grids do not divide;
    messages cite `--size` only where the caller gave one (not for a given input).
    """
    _check_order(runs, given_input)
    _check_consistent(runs)
    last = runs[-1]
    side = size if size is not None else last.config.level_size(last.scale)
    if size is not None and not given_input:
        asked = f"--size {size}"
    elif given_input:
        asked = f"output side {side} (the given cubes' side times the up-scaling factors)"
    else:
        asked = f"output side {side} (run {last.path}'s level side)"
    plans: list[LevelPlan] = []
    for k in range(len(runs) - 1, -1, -1):
        run, config = runs[k], runs[k].config
        scale = scales.scale(run.scale)
        if scale.whole_cube:
            if side != scale.side(config.pyramid):
                raise InputError(f"{asked}: {scale.title} run {run.path} makes whole cubes of side "
                                 f"{scale.side(config.pyramid)} only, not {side}; start the chain with a "
                                 "uni-scale run for larger sizes")
            plans.append(LevelPlan(scale.level, side, side, None, config.model(scale).latent_dim, run))
            continue
        patch = config.pyramid.patch
        if side % patch:
            raise InputError(f"{asked}: level side {side} of run {run.path} is not a multiple "
                             f"of its patch {patch}")
        if not scale.conditional:
            # Mu's level is its place in this chain (it keys the noise), not the level it was trained at
            level = plans[-1].level + 1 if plans else 1
            plans.append(LevelPlan(level, side, patch, None, None, run))
            continue
        factor = scale.factor(config.pyramid)
        plans.append(LevelPlan(scale.level, side, patch, factor, None, run,
                               lookahead=config.lookahead(scale)))
        side //= factor
    if given_input:
        plans.append(LevelPlan(plans[-1].level + 1, side, side, None, None, None))
    plans.reverse()
    names = [f"levels/{p.level}" for p in plans[:-1]] + ["data"]
    return [LevelPlan(**{**p.__dict__, "name": name}) for p, name in zip(plans, names)]


def with_latent_scales(plans: list[LevelPlan], runs: list[RunInfo], latent_scales: list[float]) -> list[LevelPlan]:
    """`plans` with run k's latents drawn at latent_scales[k] (`nbgan_app.latent_scale`); a given level as it is."""
    scale_of = {id(run): scale for run, scale in zip(runs, latent_scales)}
    return [p if p.run is None else dataclasses.replace(p, latent_scale=scale_of[id(p.run)]) for p in plans]


def dataset_specs(plans: list[LevelPlan], ndim: int = 3) -> list[DatasetSpec]:
    """The file's datasets; `data` (counts) keeps a frontier of transformed patches if made patch by patch."""
    return [DatasetSpec(p.name, p.side, p.patch, ndim, frontier=p.name == "data" and p.patch < p.side)
            for p in plans]


def run_chain(plans: list[LevelPlan], generators: list[Callable | None], sample_file: SampleFile | ArrayLevels,
              n_cubes: int, *, given: np.ndarray | None = None, seed: int = 0, order: str = "wavefront",
              max_batch: int = 64, to_counts: Callable | None = None, progress: Callable | None = None,
              first_cube: int = 0) -> dict:
    """Make every level of `plans` into `sample_file` (levels already flagged done are skipped).

    The last level goes to `data` through `to_counts` (a `writer.Transform`,
    `particles.patch_counts`); coarser levels stay in transformed space. A
    first plan without a run is a given input: `given` (N, S, ..., S) in
    transformed space, or None where the caller wrote it beforehand. Returns the
    generator calls per level name. A resume must use the same `order`
    (it keys the frontier of `data`, writer.LevelTarget). `first_cube` numbers the
    cubes for the noise: the file's cube k is cube first_cube + k (a worker's shard).
    """
    calls = {}
    for k, (plan, generator) in enumerate(zip(plans, generators)):
        last = k == len(plans) - 1
        target = sample_file.target(plan.name, to_counts if last else None, order)
        if plan.run is None:
            if given is not None:
                give_level(target, given)
            continue
        coarse = sample_file.dataset(plans[k - 1].name) if plan.factor is not None else None
        calls[plan.name] = make_level(plan, generator, target, n_cubes, coarse=coarse, seed=seed, order=order,
                                      max_batch=max_batch, progress=progress, first_cube=first_cube)
    sample_file.finish()
    return calls


def sample_in_memory(plans: list[LevelPlan], generators: list[Callable | None], n_cubes: int, *,
                     given: np.ndarray | None = None, seed: int = 0, order: str = "wavefront",
                     max_batch: int = 64, progress: Callable | None = None) -> np.ndarray:
    """The last level of `plans` for cubes 0 .. n_cubes-1, (N, S, ..., S) float32 in transformed space.

    The cubes `nbgan sample` writes for the same plans, generators and seed
    (before its backward transform), without a file. `given` is the first
    level of a chain planned with `given_input`.
    """
    levels = ArrayLevels(dataset_specs(plans), n_cubes)
    run_chain(plans, generators, levels, n_cubes, given=given, seed=seed, order=order, max_batch=max_batch,
              progress=progress)
    return levels.dataset(plans[-1].name)
