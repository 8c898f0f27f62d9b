"""What each scale trains on: augmented cubes (M3) or windows (M2, M1, Mu).

Batches are cut on the fly from the level cubes, never materialised: host
memory is the level cubes plus one batch (the paper config, 30 cubes of 256^3,
is 2 GB of float32 at level 1). Every batch is a pure function of
(seed, batch index), so a resumed run sees exactly the batches it would have
seen without the interruption.

Augmentation: a uniform periodic shift and one of the 48 symmetries of the
cube (axis permutation and flips). For windows the shift is applied by wrapped
indexing and the symmetry to the window; on the torus that draws the same
distribution as transforming the whole cube first, at the cost of one window.

A window's target patch index is drawn uniformly on the patch grid of the
level, as the sampler visits them; where it is 0 along an axis the window
reaches past the cube's low face and that half is zeroed, exactly as in
sampling (`windows` module). Coarse windows are block means of the windows,
which is how the pyramid defines the coarser level; with an up-scaler's
lookahead the windows are cut one patch longer past the target's high faces
(zeros past the cube's high face, as in sampling), coarsened, and the fine
windows cut back to (2p)^d.
"""

from __future__ import annotations

import keras
import numpy as np

from nbgan_app.pyramid import coarsen
from nbgan_app.windows import coarse_span


def random_symmetry(rng: np.random.Generator, ndim: int) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """One of the 2^d d! symmetries of the square/cube: an axis permutation and flips."""
    perm = tuple(int(a) for a in rng.permutation(ndim))
    flips = tuple(bool(f) for f in rng.integers(2, size=ndim))
    return perm, flips


def transform_cube(cube: np.ndarray, shift, perm, flips) -> np.ndarray:
    """The cube shifted periodically by `shift`, then permuted and flipped."""
    out = np.transpose(np.roll(cube, shift, axis=tuple(range(cube.ndim))), perm)
    flipped = [axis for axis, f in enumerate(flips) if f]
    return np.flip(out, axis=flipped) if flipped else out


def cut_window(cube, index, patch, shift, perm=None, flips=None, span: int = 2) -> np.ndarray:
    """The (span patch)^d window from patch `index - 1` of `transform_cube(cube, ...)` on every axis.

    With span 2 it is the window whose target is patch `index`; with span 3 it
    reaches one patch past the target's high faces (an up-scaler's lookahead:
    `windows.coarse_span`). Computed by wrapped indexing of the original cube,
    without transforming it whole. Zeros where the window reaches past the low
    faces (index 0) or past the high faces (index n - 1, span 3), as in sampling.
    """
    ndim = cube.ndim
    size = cube.shape[0]
    perm = perm or tuple(range(ndim))
    flips = flips or (False,) * ndim
    axes = []
    for axis in range(ndim):
        # position in the transformed cube -> position in the shifted cube -> in the original
        j = np.arange(span * patch) + (index[axis] - 1) * patch
        j = size - 1 - (j % size) if flips[axis] else j % size
        axes.append((j - shift[perm[axis]]) % size)
    window = np.transpose(cube, perm)[np.ix_(*axes)]
    for axis, i in enumerate(index):
        outside = []
        if i == 0:
            outside.append(slice(0, patch))
        if span > 2 and i == size // patch - 1:
            outside.append(slice(2 * patch, None))
        for part in outside:
            region = [slice(None)] * ndim
            region[axis] = part
            window[tuple(region)] = 0
    return window


class TrainingBatches(keras.utils.PyDataset):
    """Batches of `num_critic_steps` real batches, one per critic step.

    Args:
        levels: transformed level cubes (N, S, ..., S) the scale works on.
        batch_size: cubes or windows per critic step.
        num_critic_steps: real batches per generator step.
        patch: patch side for windowed scales, or None for whole cubes (M3).
        factor: down-scaling factor for the coarse windows (M2, M1), or None (M3, Mu).
        count_transform: the transform of a count-space pyramid (`pyramid.coarsen`), else None.
        lookahead: the coarse windows reach one patch past the target's high faces (`windows`).
        seed: batches are a pure function of (seed, index).
        steps: number of batches (generator steps) in one pass.
        first_step: index offset, so batch i of this dataset is global step first_step + i.

    Items: M3 -> (B, n, S..., 1); Mu -> (B, n, 2p..., 1); M2/M1 -> that and the
    coarse windows (B, n, 2p/f..., 1), or (B, n, 3p/f..., 1) with the lookahead, as a
    tuple. Batch axis first (Keras shards it); axis 1 is the critic step.
    """

    def __init__(self, levels, batch_size, num_critic_steps, patch=None, factor=None, seed=0,
                 steps=1, first_step=0, count_transform=None, lookahead=False, **kwargs):
        super().__init__(**kwargs)
        self.levels = levels
        self.batch_size = batch_size
        self.num_critic_steps = num_critic_steps
        self.patch = patch
        self.factor = factor
        self.seed = seed
        self.steps = steps
        self.first_step = first_step
        self.count_transform = count_transform
        self.span = coarse_span(lookahead) if factor is not None else 2
        self.ndim = levels.ndim - 1

    def __len__(self):
        return self.steps

    def _item(self, rng: np.random.Generator) -> np.ndarray:
        cube = self.levels[rng.integers(len(self.levels))]
        size = cube.shape[0]
        shift = tuple(int(s) for s in rng.integers(size, size=self.ndim))
        perm, flips = random_symmetry(rng, self.ndim)
        if self.patch is None:
            return transform_cube(cube, shift, perm, flips)
        index = tuple(int(i) for i in rng.integers(size // self.patch, size=self.ndim))
        return cut_window(cube, index, self.patch, shift, perm, flips, self.span)

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.first_step + index])
        count = self.num_critic_steps * self.batch_size
        items = np.stack([self._item(rng) for _ in range(count)])[..., None].astype(np.float32)
        items = items.reshape((self.batch_size, self.num_critic_steps) + items.shape[1:])
        if self.factor is None:
            return items
        coarse = coarsen(items[..., 0], self.factor, self.ndim, self.count_transform)[..., None]
        fine = (slice(None), slice(None)) + (slice(0, 2 * self.patch),) * self.ndim
        return np.ascontiguousarray(items[fine]), coarse

