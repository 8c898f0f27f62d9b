"""The patch sampler: owns the loop over the patch grid, takes the generator step as a callable.

One level at a time. A patch-by-patch level (M2, M1, Mu) walks its n^d grid
in the waves of `orders.waves`; for each patch of each cube it cuts the
(2p)^d window of the level generated so far (corner (i - 1) p, zeros past the
low faces) and, for up-scalers, the (2p/f)^d window of the coarser level
(corner (i - 1) p / f; (3p/f)^d with the lookahead, zeros past the high faces)
with `windows.extract_window`, and turns them into the
generator's context with `windows.split_window`: the very functions training
uses. Generator input = concat([latent (B, p..., 1), context], -1); output
(B, p..., 1), all in transformed space. One batched call per at most
`max_batch` (cube, patch) pairs of a wave, so a wavefront walk of a 3-D grid
makes 3n - 2 calls when `max_batch` holds a whole wave of all N cubes.

Whole-cube levels (M3) are made by `levels.make_level`, which picks between the two.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from nbgan_app.sampling import noise
from nbgan_app.sampling.orders import waves
from nbgan_app.sampling.store import DatasetCube, PatchStore, StoreCube
from nbgan_app.windows import coarse_span, extract_window, split_window

Generator = Callable[[np.ndarray], object]
Progress = Callable[[int, int, int], None]  # (wave, waves, level)


def to_numpy(x) -> np.ndarray:
    """A NumPy array or backend tensor (a generator's output, a `split_window` context) as float32 NumPy."""
    if not isinstance(x, np.ndarray):
        from keras import ops

        x = ops.convert_to_numpy(x)
    return np.asarray(x, dtype=np.float32)


def _chunks(items: list, size: int) -> list[list]:
    return [items[k:k + size] for k in range(0, len(items), size)]


class PatchSampler:
    """Generates one level patch by patch into a `writer.LevelTarget`.

    Args:
        generator: numpy (B, p, ..., p, C) -> (B, p, ..., p, 1).
        order: "wavefront" (default) or "raster".
        max_batch: most (cube, patch) pairs per generator call.
        seed, level: key the per-patch latent noise (with cube and patch index).
        first_cube: the index, in the whole sample, of the target's cube 0: a worker that makes
            cubes a .. b-1 into a shard of b - a draws the noise of cubes a .. b-1 (`workers`).
        factor: fine/coarse side ratio of the conditioning level, or None (Mu).
        lookahead: the up-scaler sees the coarse patches past the target's high faces (`windows`).
        latent_scale: the latent channel is drawn as N(0, latent_scale^2) (`nbgan_app.latent_scale`).
        progress: called after every wave with (wave, waves, level), 1-based.
    """

    def __init__(self, generator: Generator, *, order: str = "wavefront", max_batch: int = 64,
                 seed: int = 0, level: int = 1, factor: int | None = None, progress: Progress | None = None,
                 first_cube: int = 0, lookahead: bool = False, latent_scale: float = 1.0):
        if max_batch < 1:
            raise ValueError(f"Expected max_batch >= 1. Received: max_batch={max_batch}")
        self.generator, self.order, self.max_batch = generator, order, max_batch
        self.seed, self.level, self.factor, self.progress = seed, level, factor, progress
        self.first_cube, self.lookahead, self.latent_scale = first_cube, lookahead, np.float32(latent_scale)
        self.calls = 0
        self.store: PatchStore | None = None

    def sample(self, target, n_cubes: int, coarse=None) -> None:
        """Fill `target` (a LevelTarget over (N, S...)); `coarse` is the (N, S/f...) level below, or None."""
        spec = target.spec
        self.store = PatchStore(spec.n, spec.patch, spec.ndim, n_cubes, fallback=target.read)
        schedule = waves(spec.n, spec.ndim, self.order)
        for number, wave in enumerate(schedule, 1):
            todo = [index for index in wave if not target.is_done(index)]
            pairs = [(cube, index) for index in todo for cube in range(n_cubes)]
            for chunk in _chunks(pairs, self.max_batch):
                outputs = self._generate(chunk, spec.patch, coarse)
                for (cube, index), patch in zip(chunk, outputs):
                    self.store.put(cube, index, patch)
                    target.write(cube, index, patch)
            for index in wave:
                self.store.finished(index)
            if todo:
                target.mark_done(todo)
            if self.progress is not None:
                self.progress(number, len(schedule), self.level)

    def inputs(self, chunk: list[tuple[int, tuple[int, ...]]], patch: int, coarse) -> np.ndarray:
        """Generator input (B, p..., C) for (cube, index) pairs: [latent, neighbours, [ahead,] up(coarse target)]."""
        windows = np.stack([extract_window(StoreCube(self.store, cube, index),
                                           tuple((i - 1) * patch for i in index), 2 * patch)
                            for cube, index in chunk])[..., None]
        coarse_windows = None
        if self.factor is not None:
            small = patch // self.factor
            span = coarse_span(self.lookahead) * small
            coarse_windows = np.stack([extract_window(DatasetCube(coarse, cube),
                                                      tuple((i - 1) * small for i in index), span)
                                       for cube, index in chunk])[..., None]
        context, _ = split_window(windows, coarse_windows, self.lookahead)
        latent = np.stack([noise.patch_latent(self.seed, self.level, self.first_cube + cube, index, patch)
                           for cube, index in chunk]) * self.latent_scale
        return np.concatenate([latent, to_numpy(context)], axis=-1)

    def _generate(self, chunk, patch: int, coarse) -> np.ndarray:
        x = self.inputs(chunk, patch, coarse)
        y = to_numpy(self.generator(x))
        self.calls += 1
        expected = x.shape[:-1] + (1,)
        if y.shape != expected:
            raise ValueError(f"Expected generator output of shape {expected}. Received: shape={y.shape}")
        return y[..., 0]
