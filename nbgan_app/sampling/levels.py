"""Making one level of a chain: `make_level`, and the in-memory level it can fill.

Every level any part of nbgan generates (`nbgan sample` and `nbgan upscale`,
the evaluation during training, the study and the ablation) is made here,
from a `LevelPlan` (what `chain.plan_chain` makes of the runs) and a
generator callable (`runs.keras_generator`), into a target:
- `writer.LevelTarget`, one dataset of a sample file (resumable, streamed);
- `ArrayTarget`, a NumPy array in memory (`ArrayLevels` holds one per plan).

Latents come only from `noise` keyed by (seed, level, cube, patch index),
never from a backend's seed state: the same runs and seed give the same cubes
in memory and in a file, in any order, batch size or resume, and evaluating
during training does not change what training draws next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from nbgan_app.sampling import noise
from nbgan_app.sampling.sampler import PatchSampler, Progress, to_numpy
from nbgan_app.sampling.writer import DatasetSpec, Transform, patch_region

if TYPE_CHECKING:
    from nbgan_app.sampling.chain import RunInfo

Index = tuple[int, ...]


@dataclass(frozen=True)
class LevelPlan:
    """One level of a chain: what to make and with which model.

    Attributes:
        level: 3 (coarsest) .. 1 (finest); keys the noise and names `levels/<level>`.
        side: voxels per axis of this level's cubes.
        patch: patch side (== side for a whole-cube model).
        factor: side / coarse side of the conditioning level, None without one (M3, Mu).
        latent_dim: latent vector length of a whole-cube model, else None.
        run: the run providing the generator, None for a given input level.
        name: its dataset, `levels/<level>` or `data` for the last level of a chain.
        lookahead: the up-scaler sees the coarse patches past the target's high faces (`windows`).
        latent_scale: the latents are drawn as N(0, latent_scale^2) (`nbgan_app.latent_scale`).
    """

    level: int
    side: int
    patch: int
    factor: int | None
    latent_dim: int | None
    run: RunInfo | None
    name: str = ""
    lookahead: bool = False
    latent_scale: float = 1.0


class ArrayTarget:
    """A level (N, S, ..., S) in memory, in transformed space, as the sampler fills it.

    The in-memory counterpart of `writer.LevelTarget`: the same patch regions
    and done flags, no file, no frontier (the values are never mapped to counts).
    """

    def __init__(self, n_cubes: int, side: int, patch: int, ndim: int = 3, name: str = "data"):
        self.spec = DatasetSpec(name, side, patch, ndim)
        self.values = np.zeros((n_cubes,) + (side,) * ndim, np.float32)
        self._done = np.zeros((self.spec.n,) * ndim, bool)

    def write(self, cube: int, index: Index, values: np.ndarray) -> None:
        self.values[patch_region(cube, index, self.spec.patch)] = values

    def read(self, cube: int, index: Index) -> np.ndarray:
        return self.values[patch_region(cube, index, self.spec.patch)]

    def is_done(self, index: Index) -> bool:
        return bool(self._done[index])

    def mark_done(self, indices: list[Index], generated: bool = True) -> None:
        """Flag patches done; `generated` only matters to a file (`writer.LevelTarget.mark_done`)."""
        for index in indices:
            self._done[index] = True


class ArrayLevels:
    """The levels of a chain in memory, one `ArrayTarget` per dataset, in place of a `writer.SampleFile`.

    `chain.run_chain` fills either the same way. Every level stays in
    transformed space; callers map the last one to counts themselves.
    """

    def __init__(self, specs: list[DatasetSpec], n_cubes: int):
        self.targets = {s.name: ArrayTarget(n_cubes, s.side, s.patch, s.ndim, s.name) for s in specs}

    def target(self, name: str, to_file: Transform | None = None, order: str = "wavefront") -> ArrayTarget:
        """The level `name`; `order` is the file's frontier key and means nothing in memory."""
        if to_file is not None:
            raise ValueError("in-memory levels stay in transformed space; map the result to counts instead")
        return self.targets[name]

    def dataset(self, name: str) -> np.ndarray:
        return self.targets[name].values

    def finish(self) -> None:
        """Nothing to flush: the levels are complete once `run_chain` returns."""


def give_level(target, values: np.ndarray) -> None:
    """Write a given level (N, S, ..., S), in transformed space, into a whole-level target (patch == side).

    A target that already holds it (a resumed file) is left as it is.
    """
    index = (0,) * target.spec.ndim
    expected = (target.spec.side,) * target.spec.ndim
    if values.shape[1:] != expected:
        raise ValueError(f"Expected given cubes of shape {expected}. Received: shape={values.shape[1:]}")
    if not target.is_done(index):
        for cube, cube_values in enumerate(values):
            target.write(cube, index, cube_values)
        target.mark_done([index], generated=False)


def make_level(plan: LevelPlan, generator: Callable[[np.ndarray], object], target, n_cubes: int, *,
               coarse=None, seed: int = 0, order: str = "wavefront", max_batch: int = 64,
               progress: Progress | None = None, first_cube: int = 0) -> int:
    """Generate level `plan` of cubes 0 .. n_cubes-1 into `target`; returns the generator calls made.

    Args:
        plan: the level (`chain.plan_chain`); its `level` keys the noise.
        generator: NumPy in, (B, ..., 1) out (`runs.keras_generator` of a Keras generator).
            A whole-cube level (M3, `plan.latent_dim` set) maps (B, latent_dim) latents
            to (B, S, ..., S, 1) cubes; a patch level maps [latent, context] to patches.
        target: `ArrayTarget` or `writer.LevelTarget` over (n_cubes, S, ..., S);
            patches it flags done are skipped (a resume).
        coarse: (n_cubes, S/f, ..., S/f) the conditioning level in transformed space
            (an array or an HDF5 dataset), for up-scalers only (`plan.factor` set).
        seed: with the level, cube and patch index, keys every latent (`noise`).
        order: "wavefront" or "raster" (same cubes; the frontier of a file depends on it).
        max_batch: most cubes or (cube, patch) pairs per generator call.
        progress: called with (wave, waves, level), 1-based, after every wave.
        first_cube: the target's cube k is cube first_cube + k of the whole sample (its noise key):
            a worker's shard of cubes a .. b-1 holds exactly what a single run writes there.
    """
    if plan.latent_dim is None:
        sampler = PatchSampler(generator, order=order, max_batch=max_batch, seed=seed, level=plan.level,
                               factor=plan.factor, progress=progress, first_cube=first_cube,
                               lookahead=plan.lookahead, latent_scale=plan.latent_scale)
        sampler.sample(target, n_cubes, coarse if plan.factor is not None else None)
        return sampler.calls
    index = (0,) * target.spec.ndim
    calls = 0
    if not target.is_done(index):
        for start in range(0, n_cubes, max_batch):
            chunk = range(start, min(start + max_batch, n_cubes))
            latent = np.stack([noise.cube_latent(seed, plan.level, first_cube + cube, plan.latent_dim)
                               for cube in chunk]) * np.float32(plan.latent_scale)
            cubes = to_numpy(generator(latent))
            calls += 1
            expected = (len(chunk),) + (target.spec.side,) * target.spec.ndim + (1,)
            if cubes.shape != expected:
                raise ValueError(f"Expected generator output of shape {expected}. Received: shape={cubes.shape}")
            for cube, values in zip(chunk, cubes):
                target.write(cube, index, values[..., 0])
        target.mark_done([index])
    if progress is not None:
        progress(1, 1, plan.level)
    return calls
