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
a seed out of range, input cubes at another voxel scale than the run's, an
existing output, a disk too small) raise InputError before anything is
written. With `overwrite`, an existing file is replaced only by a complete
new one (`writer`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbgan_app import scales
from nbgan_app.errors import InputError
from nbgan_app.latent_scale import scale_for
from nbgan_app.sampling.chain import (LevelPlan, RunInfo, dataset_specs, plan_chain, run_box_size, run_chain,
                                      with_latent_scales)
from nbgan_app.sampling.orders import ORDERS, waves
from nbgan_app.sampling.runs import checkpoint_of, load_generator, load_run
from nbgan_app.sampling.sampler import Progress
from nbgan_app.sampling.writer import SampleFile

PathLike = str | os.PathLike
SEED_MAX = 2**63 - 1  # seeds are stored as an int64 attribute of the sample file


def check_seed(seed, name: str = "seed") -> int:
    """`seed` as an int in 0 .. SEED_MAX; InputError naming `name` (a flag, for the CLI) otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise InputError(f"{name}: expected a whole number from 0 to 2^63-1. Received: {seed!r}")
    return int(seed)


def _check_settings(n: int | None = None, *, seed, order: str | None, max_batch: int | None) -> int:
    """InputError for a bad count, seed, order or batch (before anything is loaded or written); the seed."""
    for name, value in (("n", n), ("max_batch", max_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < 1):
            raise InputError(f"{name}: expected a whole number >= 1. Received: {value!r}")
    if order is not None and order not in ORDERS:
        raise InputError(f"order: expected one of {', '.join(ORDERS)}. Received: {order!r}")
    return check_seed(seed)


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
        workers: the Ray tasks (cube ranges) that made it, or None in this process.
    """

    path: Path
    n_cubes: int
    side: int
    order: str
    calls: int
    seconds: float
    already_complete: bool = False
    workers: int | None = None

    def summary(self) -> str:
        """The line `nbgan sample` and `nbgan upscale` print when they finish."""
        if self.already_complete:
            return f"{self.path} is already complete"
        on = f", {self.workers} workers" if self.workers is not None else ""
        return (f"wrote {self.path}: {self.n_cubes} cubes of {self.side}^3 in {self.seconds:.1f} s "
                f"({self.order}, generator calls {self.calls}{on})")


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

    None when the run's box size is unknown (`chain.run_box_size`).
    """
    box = run_box_size(run)
    return None if box is None else box * side / run.config.level_size(run.scale)


def sample_chain(runs: str | Sequence[PathLike] | Chain, n: int, out: PathLike, *, size: int | None = None,
                 seed: int = 0, order: str | None = None, max_batch: int | None = None, resume: bool = False,
                 overwrite: bool = False, progress: Progress | None = None, workers: int | None = None,
                 address: str | None = None) -> SampleResult:
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
        overwrite: replace an existing `out`, once the new file is complete (until then the old one stays).
        progress: called with (wave, waves, level) after every wave; if it has a
            method `begin(work)`, that is called once before, with the work
            ahead (`work_of`), for one bar with an ETA (`progress.ProgressLine`).
        workers: sample on this many Ray workers, each a range of cubes, into the
            same file (`workers`; needs the `cluster` extra). None: in this process.
        address: the Ray cluster to run the workers on (e.g. "ray://head:10001");
            default: RAY_ADDRESS, else a local cluster of `workers` started for the call.
    """
    seed = _check_settings(n, seed=seed, order=order, max_batch=max_batch)
    if address is not None and workers is None:
        raise InputError("--address: the cluster runs workers; give their number with --workers N")
    if workers is not None:
        from nbgan_app.sampling.workers import check_workers, require_ray

        check_workers(workers)
        require_ray()  # before any run is loaded: the missing extra is the first thing to know
    if isinstance(runs, Chain):
        if size is not None:
            raise ValueError("size: plan it with load_chain(runs, size)")
        chain = runs
    else:
        chain = load_chain(runs, size)
    settings = settings_of(chain, n, {"command": "sample"}, seed=seed, order=order, max_batch=max_batch)
    if workers is not None:
        from nbgan_app.sampling.workers import sample_on_workers

        return sample_on_workers(chain, n, out, settings, workers=workers, address=address, resume=resume,
                                 overwrite=overwrite, progress=progress)
    from nbgan_app.sampling.shards import parts_dir

    if resume and not Path(out).exists() and parts_dir(out).is_dir():
        raise InputError(f"--resume: {parts_dir(out)} holds the shards of a run on workers; resume it with "
                         "--workers N")
    return _write(chain, n, out, settings, resume=resume, overwrite=overwrite, progress=progress)


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

    The input's voxels must be the size the run takes (its `box_size`
    attribute over its side, against the run's box over its level side); the
    output's `box_size` is the input's (the run's scale when the input has none).
    """
    from nbgan_app.cubes import load_cubes
    from nbgan_app.pyramid import level_of

    seed = _check_settings(seed=seed, order=order, max_batch=max_batch)
    run_info = load_run(run)
    scale = scales.scale(run_info.scale)
    if not scale.conditional:
        raise InputError(f"run {run} has scale {run_info.scale}; upscale needs an M2 or M1 run")
    input, out = Path(input), Path(out)
    _check_not_input(input, out)
    counts, input_box = load_cubes([input])
    if counts.ndim != 4:
        raise InputError(f"{input}: expected 3-D cubes. Received shape {counts.shape[1:]}")
    if not len(counts):
        raise InputError(f"{input}: holds no cubes")
    side = _upscale_side(run_info, input, counts.shape[1], from_fine)
    box = _output_box(run_info, input, counts.shape[1], input_box, from_fine)
    coarse = level_of(run_info.config, counts, side)
    del counts  # the level is all that is needed from here on
    chain = Chain([run_info], plan_chain([run_info], side * scale.factor(run_info.config.pyramid),
                                         given_input=True))
    settings = settings_of(chain, len(coarse), {"command": "upscale", "input": str(input.resolve())},
                           given_input=True, box=box, seed=seed, order=order, max_batch=max_batch)
    return _write(chain, len(coarse), out, settings, given=coarse, resume=resume, overwrite=overwrite,
                  progress=progress)


def _check_not_input(input: Path, out: Path) -> None:
    """The output may neither be the input file nor lie in the input directory (it would be read next time)."""
    source, target = input.resolve(), out.resolve()
    if target == source or (out.is_file() and input.is_file() and os.path.samefile(input, out)):  # or a hard link
        raise InputError(f"--out {out} is the --input file; write the up-scaled cubes to another file")
    if input.is_dir() and source in target.parents:
        raise InputError(f"--out {out} lies in the --input directory {input}, whose cube files would then "
                         "include it; write it elsewhere")


def _upscale_side(run: RunInfo, path: Path, side: int, from_fine: bool) -> int:
    """The side of the conditioning level made of input cubes of `side`; InputError if the patches do not tile it."""
    scale = scales.scale(run.scale)
    factor, patch = run.config.factor(scale), run.config.pyramid.patch
    # the output side (side, or side * factor) must be a whole number of patches
    if from_fine:
        need, what = patch, f"with --from-fine run {run.path} ({scale.title}) cuts them into patches of {patch}"
    else:
        need, what = patch // factor, (f"run {run.path} ({scale.title}) up-scales them by {factor} "
                                       f"into patches of {patch}")
    if side % need:
        nearby = [s for s in (side // need * need, side // need * need + need) if s > 0]
        raise InputError(f"{path}: cubes of side {side}; {what}, so it needs a side that is a multiple of "
                         f"{need}, e.g. {' or '.join(map(str, nearby))}")
    return side // factor if from_fine else side


def _output_box(run: RunInfo, path: Path, side: int, input_box: float | None, from_fine: bool) -> float | None:
    """The output's box size in Mpc/h: the input's, after checking its voxels are the ones the run takes.

    An input without a box size is taken at the run's voxel scale (None if
    the run's is unknown too); a run of unknown box size cannot be checked.
    """
    scale = scales.scale(run.scale)
    factor, trained = run.config.factor(scale), run.config.level_size(scale)
    run_box = run_box_size(run)
    if input_box is None:
        return None if run_box is None else run_box * (side if from_fine else side * factor) / trained
    if run_box is not None:
        level_side = trained if from_fine else trained // factor
        ours, theirs = input_box / side, run_box / level_side
        if not math.isclose(ours, theirs, rel_tol=1e-6):
            hint = ""
            if not from_fine and math.isclose(ours * factor, theirs, rel_tol=1e-6):
                hint = "; they look like cubes at the run's own resolution: pass --from-fine"
            elif from_fine and math.isclose(ours, theirs * factor, rel_tol=1e-6):
                hint = "; they look like cubes at its conditioning resolution: drop --from-fine"
            raise InputError(f"{path}: voxels of {ours:g} Mpc/h (box_size {input_box:g} Mpc/h over {side}), but "
                             f"run {run.path} ({scale.title}) takes voxels of {theirs:g} Mpc/h (its "
                             f"{run_box:g} Mpc/h box over {level_side} at level "
                             f"{scale.level if from_fine else scale.level + 1}){hint}")
    return input_box


def work_of(plans: list[LevelPlan], sample_file: SampleFile | None, n: int, order: str) -> list[tuple[int, list]]:
    """The work of a chain, for a progress display: [(level, [(done, to do) per wave])] in (cube, patch) units.

    One entry per generated level, in the order they are made; `done` counts
    what a resumed file already holds (nothing without a file). A whole-cube
    level (M3) is one wave of n cubes.
    """
    work = []
    for plan in plans:
        if plan.run is None:
            continue
        flags = (np.zeros((plan.side // plan.patch,) * 3, bool) if sample_file is None  # chains are 3-D
                 else sample_file.done_flags(plan.name))
        if plan.latent_dim is not None:
            work.append((plan.level, [(n, 0) if flags.all() else (0, n)]))
            continue
        per_wave = []
        for wave in waves(plan.side // plan.patch, flags.ndim, order):
            done = sum(bool(flags[index]) for index in wave)
            per_wave.append((n * done, n * (len(wave) - done)))
        work.append((plan.level, per_wave))
    return work


def _resume_labels(command: str) -> dict[str, str]:
    """The flag (or what else) sets each checked attribute, for a refused resume's message."""
    runs = "--chain" if command == "sample" else "--run"
    return {"command": "nbgan", "runs": runs, "scales": f"{runs} of scales", "n_cubes": "--n",
            "seed": "--seed", "order": "--order", "input": "--input", "transform": "the runs' transform",
            "counts": "the last run's sample.counts",
            "checkpoint_steps": "the runs' checkpoints of steps", "box_size": "box_size (Mpc/h)",
            "latent_scales": "the runs' latent scales (latent_scale.json)"}


@dataclass(frozen=True)
class Settings:
    """What one sample file records, and every writer of it (this process or workers) must use.

    Attributes:
        order, max_batch: resolved (the flag, else the last run's config).
        steps: the checkpoint step each run samples from, in chain order.
        latent_scales: each run's latent scale for that step (`nbgan_app.latent_scale`), in chain order.
        attrs: the file's attributes (`writer`), `box_size` included when known.
        box: the output's box size in Mpc/h, or None.
    """

    order: str
    max_batch: int
    steps: list[int]
    latent_scales: list[float]
    attrs: dict
    box: float | None

    @property
    def checked(self) -> tuple[str, ...]:
        """The attributes a resume must match: all but max_batch (the order keys the resume frontier)."""
        return tuple(k for k in self.attrs if k != "max_batch")

    @property
    def labels(self) -> dict[str, str]:
        return _resume_labels(self.attrs["command"])


def settings_of(chain: Chain, n: int, attrs: dict, *, given_input: bool = False, box: float | None = None,
                seed: int, order: str | None, max_batch: int | None) -> Settings:
    """Resolve the order, batch and checkpoints of a call and the file's attributes.

    `box`: the output's box size in Mpc/h for a given input (`upscale`);
    otherwise the last run's box at the output side. InputError (a run
    without a checkpoint that loads) before anything is written.
    """
    runs = chain.runs
    config = runs[-1].config
    order = order or config.sample.order
    max_batch = max_batch or config.sample.max_batch
    steps = [checkpoint_of(r)[0] for r in runs]
    latent_scales = [scale_for(r.path, step) for r, step in zip(runs, steps)]
    if not given_input:
        box = box_size_of(runs[-1], chain.side)
    attrs = {**attrs, "runs": [str(r.path.resolve()) for r in runs], "checkpoint_steps": steps,
             "scales": [r.scale for r in runs], "latent_scales": latent_scales, "seed": seed, "n_cubes": n,
             "transform": config.transform.__dict__, "counts": config.sample.counts, "order": order,
             "max_batch": max_batch,
             **({"box_size": box} if box is not None else {})}
    return Settings(order, max_batch, steps, latent_scales, attrs, box)


def _write(chain: Chain, n: int, out: PathLike, settings: Settings, *, given: np.ndarray | None = None,
           first_cube: int = 0, attrs: dict | None = None, resume: bool, overwrite: bool,
           progress: Progress | None) -> SampleResult:
    """Load the generators, open the file, run the chain; shared by `sample_chain`, `upscale` and the workers.

    `first_cube` and `attrs` are a worker's: its shard holds cubes
    first_cube .. first_cube + n - 1 of the sample, and records `attrs`
    (the sample's, with its own n_cubes and first_cube).
    """
    from nbgan_app.sampling import particles

    runs, plans = chain.runs, with_latent_scales(chain.plans, chain.runs, settings.latent_scales)
    config = runs[-1].config
    step_of = {id(run): step for run, step in zip(runs, settings.steps)}
    generators = [load_generator(p.run, step_of[id(p.run)]) if p.run is not None else None for p in plans]
    attrs = settings.attrs if attrs is None else attrs
    checked = tuple(k for k in attrs if k != "max_batch")
    level, seed = plans[-1].level, attrs["seed"]

    def to_counts(values, cube, index):
        return particles.patch_counts(values, config, level, seed, first_cube + cube, index)

    started = time.time()
    with SampleFile(out, dataset_specs(plans), n, attrs, overwrite=overwrite, resume=resume,
                    checked=checked, labels=settings.labels) as sample_file:
        if resume and sample_file.complete:
            return SampleResult(Path(out), n, chain.side, settings.order, 0, 0.0, already_complete=True)
        if settings.box is not None:
            sample_file.h5["data"].attrs["box_size"] = settings.box
        begin = getattr(progress, "begin", None)
        if begin is not None:
            begin(work_of(plans, sample_file, n, settings.order))
        calls = run_chain(plans, generators, sample_file, n, given=given, seed=seed,
                          order=settings.order, max_batch=settings.max_batch,
                          to_counts=to_counts, progress=progress,
                          first_cube=first_cube)
    return SampleResult(Path(out), n, chain.side, settings.order, sum(calls.values()), time.time() - started)
