"""Sampling as a notebook calls it: `sample_chain` and `upscale` write one sample file and say what they did.

    from nbgan_app.sampling import sample_chain, upscale
    sample_chain("demo", 8, "samples.h5", seed=1)             # a preset name
    sample_chain(["runs/m3", "runs/m2", "runs/m1"], 8, "samples.h5")
    upscale("runs/m1", "held_out.h5", "up.h5", from_fine=True)

`nbgan sample` and `nbgan upscale` are these functions behind their flags.
The file (`writer`) holds `data` (N, S, S, S) counts and the coarser levels
under `levels/`; an interrupted call leaves `complete = False`, and the same
call with `resume=True` finishes it into the file an uninterrupted one writes.
Errors a user can fix (missing runs or checkpoints, chains that do not fit,
an existing output) raise InputError before anything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbgan_app import scales
from nbgan_app.errors import InputError
from nbgan_app.sampling.chain import LevelPlan, RunInfo, dataset_specs, plan_chain, run_chain
from nbgan_app.sampling.runs import checkpoint_of, load_generator, load_run
from nbgan_app.sampling.sampler import Progress
from nbgan_app.sampling.writer import SampleFile

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Chain:
    """Loaded runs, coarsest first, and the levels they make (`chain.plan_chain`)."""

    runs: list[RunInfo]
    plans: list[LevelPlan]

    @property
    def side(self) -> int:
        """Voxels per axis of the cubes the chain ends with."""
        return self.plans[-1].side


@dataclass(frozen=True)
class SampleResult:
    """What one call wrote.

    Attributes:
        path: the sample file, as given.
        n_cubes, side: its `data` is (n_cubes, side, side, side) counts.
        order: the patch order used ("wavefront" or "raster").
        calls: generator calls this call made (0 when the file was already complete).
        seconds: wall-clock seconds of this call's sampling.
        already_complete: a resumed file was already complete; nothing was written.
    """

    path: Path
    n_cubes: int
    side: int
    order: str
    calls: int
    seconds: float
    already_complete: bool = False

    def summary(self) -> str:
        """The line `nbgan sample` and `nbgan upscale` print when they finish."""
        if self.already_complete:
            return f"{self.path} is already complete"
        return (f"wrote {self.path}: {self.n_cubes} cubes of {self.side}^3 in {self.seconds:.1f} s "
                f"({self.order}, generator calls {self.calls})")


def load_chain(runs: str | Sequence[PathLike], size: int | None = None) -> Chain:
    """Load and plan a chain: a preset name, comma-separated run directories, or a list of them.

    `size` is the output side in voxels (default: the side the last run was
    trained at). Raises InputError for missing runs or runs that do not chain.
    """
    from nbgan_app.presets import resolve_chain

    paths = resolve_chain(runs) if isinstance(runs, str) else [Path(p) for p in runs]
    if not paths:
        raise InputError("expected at least one run directory, coarsest first")
    loaded = [load_run(p) for p in paths]
    return Chain(loaded, plan_chain(loaded, size))


def box_size_of(run: RunInfo, side: int) -> float | None:
    """Box side in Mpc/h of a cube of `side` voxels at the resolution the run was trained at.

    None when the run's config states no box size (its data files carried it).
    """
    box = run.config.data.declared_box_size()
    return None if box is None else box * side / run.config.level_size(run.scale)


def sample_chain(runs: str | Sequence[PathLike] | Chain, n: int, out: PathLike, *, size: int | None = None,
                 seed: int = 0, order: str | None = None, max_batch: int | None = None, resume: bool = False,
                 overwrite: bool = False, progress: Progress | None = None) -> SampleResult:
    """Sample `n` count cubes through a chain of trained runs into the HDF5 file `out`.

    Args:
        runs: a preset name (`nbgan presets`), run directories coarsest first
            (M3, or Mu for sizes beyond what M3 makes whole, then M2, M1), as a
            list or comma-separated, or a `Chain` from `load_chain`.
        n: number of cubes.
        size: output side in voxels (default: the last run's level side); not with a `Chain`.
        seed: noise seed; the same runs and seed give the same cubes in any order or batch size.
        order: "wavefront" or "raster" (default: the last run's `sample.order`).
        max_batch: most patches per generator call (default: the last run's `sample.max_batch`).
        resume: finish an interrupted file (same runs, n, seed and order).
        overwrite: replace an existing `out` once the new file has content.
        progress: called with (wave, waves, level) after every wave (`progress.WaveReporter`).
    """
    if isinstance(runs, Chain):
        if size is not None:
            raise ValueError("size: plan it with load_chain(runs, size)")
        chain = runs
    else:
        chain = load_chain(runs, size)
    return _write(chain, n, out, {"command": "sample"}, seed=seed, order=order, max_batch=max_batch,
                  resume=resume, overwrite=overwrite, progress=progress)


def upscale(run: PathLike, input: PathLike, out: PathLike, *, from_fine: bool = False, seed: int = 0,
            order: str | None = None, max_batch: int | None = None, resume: bool = False, overwrite: bool = False,
            progress: Progress | None = None) -> SampleResult:
    """Up-scale given count cubes with one trained M2 or M1 run into `out` (the thesis's conditional evaluation).

    Args:
        run: run directory of an M2 or M1 run.
        input: HDF5 cube file or directory of (N, s, s, s) counts at the
            run's conditioning resolution, or with `from_fine` at its own
            resolution (then brought down as in training, `pyramid.level_of`).
        out, seed, order, max_batch, resume, overwrite, progress: as for `sample_chain`;
            the output has n = N cubes of side s times the run's factor.
    """
    run_info = load_run(run)
    scale = scales.scale(run_info.scale)
    if not scale.conditional:
        raise InputError(f"run {run} has scale {run_info.scale}; upscale needs an M2 or M1 run")
    input = Path(input)
    coarse = _given_level(run_info, input, from_fine)
    if coarse.ndim != 4:
        raise InputError(f"{input}: expected 3-D cubes. Received shape {coarse.shape[1:]}")
    plans = plan_chain([run_info], coarse.shape[1] * scale.factor(run_info.config.pyramid), given_input=True)
    return _write(Chain([run_info], plans), len(coarse), out, {"command": "upscale", "input": str(input.resolve())},
                  given=coarse, seed=seed, order=order, max_batch=max_batch, resume=resume, overwrite=overwrite,
                  progress=progress)


def _given_level(run: RunInfo, path: Path, from_fine: bool) -> np.ndarray:
    """The input cubes in transformed space at the run's conditioning resolution, (N, s, ..., s)."""
    from nbgan_app.cubes import load_cubes
    from nbgan_app.pyramid import level_of

    counts, _ = load_cubes([path])
    side = counts.shape[1]
    if from_fine:
        factor = run.config.factor(run.scale)
        if side % factor:
            raise InputError(f"{path}: side {side} is not divisible by the run's factor {factor}")
        side //= factor
    return level_of(run.config, counts, side)


def _write(chain: Chain, n: int, out: PathLike, attrs: dict, *, given: np.ndarray | None = None, seed: int,
           order: str | None, max_batch: int | None, resume: bool, overwrite: bool,
           progress: Progress | None) -> SampleResult:
    """Load the generators, open the file, run the chain; shared by `sample_chain` and `upscale`."""
    from nbgan_app import transforms

    runs, plans = chain.runs, chain.plans
    config = runs[-1].config
    order = order or config.sample.order
    max_batch = max_batch or config.sample.max_batch
    steps = [checkpoint_of(r)[0] for r in runs]  # InputError before anything is written
    generators = [load_generator(p.run) if p.run is not None else None for p in plans]
    box = box_size_of(runs[-1], chain.side)
    attrs = {**attrs, "runs": [str(r.path.resolve()) for r in runs], "checkpoint_steps": steps,
             "scales": [r.scale for r in runs], "seed": seed, "n_cubes": n,
             "transform": config.transform.__dict__, "order": order, "max_batch": max_batch,
             **({"box_size": box} if box is not None else {})}
    checked = tuple(k for k in attrs if k != "max_batch")  # the order keys the resume frontier
    started = time.time()
    with SampleFile(out, dataset_specs(plans), n, attrs, overwrite=overwrite, resume=resume,
                    checked=checked) as sample_file:
        if resume and sample_file.complete:
            return SampleResult(Path(out), n, chain.side, order, 0, 0.0, already_complete=True)
        if box is not None:
            sample_file.h5["data"].attrs["box_size"] = box
        calls = run_chain(plans, generators, sample_file, n, given=given, seed=seed, order=order,
                          max_batch=max_batch, to_counts=lambda y: transforms.backward(y, config.transform),
                          progress=progress)
    return SampleResult(Path(out), n, chain.side, order, sum(calls.values()), time.time() - started)
