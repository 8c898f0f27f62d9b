"""The resolution pyramid: block averaging down (the models up-sample with `windows.upsample`).

Levels are built in transformed space, as the released code does: I2 is the
block mean of the transformed I1 by a factor per axis, and so on. With
`pyramid.mean = "counts"` a coarse voxel is instead the transform of its
block's mean count, so every level holds the same particles (`coarsen`).
Spatial axes are the last `ndim` axes of an array (ndim = 2 or 3); leading
axes (a batch) are carried through. `level_of` is the one way counts become a level, for
training, in-training evaluation, the study, `nbgan upscale --from-fine` and
the dashboard alike, so a model is always conditioned and scored on exactly
what it was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nbgan_app.config import Config


def block_mean(x: np.ndarray, factor: int, ndim: int = 3) -> np.ndarray:
    """Mean over non-overlapping factor^ndim blocks of the last `ndim` axes."""
    if factor == 1:
        return x
    lead = x.shape[: x.ndim - ndim]
    shape = list(lead)
    for side in x.shape[x.ndim - ndim:]:
        if side % factor:
            raise ValueError(f"Expected sides divisible by factor={factor}. Received: shape={x.shape}")
        shape += [side // factor, factor]
    blocks = x.reshape(shape)
    return blocks.mean(axis=tuple(len(lead) + 2 * i + 1 for i in range(ndim)), dtype=np.float64).astype(x.dtype)


def level_of(config: Config, counts: np.ndarray, side: int, *, inplace: bool = False) -> np.ndarray:
    """The pyramid level of `side` voxels per axis of count cubes: forward transform, then block mean.

    Args:
        config: its `transform` maps counts to the models' space.
        counts: (N, S, ..., S) counts >= 0, d = 2 or 3 spatial axes; S is a
            multiple of `side` (S is usually the full resolution `pyramid.sizes[0]`).
        side: voxels per axis of the level, e.g. `Scale.side(config.pyramid)`.
        inplace: at side == S, write the transformed cubes over `counts`
            (float32) instead of a copy, so the paper's 30 cubes of 256^3 take
            2 GB of host memory, not 4.

    Returns (N, side, ..., side) float32 in transformed space. Cubes are
    transformed one at a time, so the float64 intermediate is one cube.
    """
    from nbgan_app.transforms import forward

    in_counts = config.pyramid.mean == "counts"
    ndim = counts.ndim - 1
    full = counts.shape[-1]
    if full % side:
        raise ValueError(f"Expected a side dividing {full}. Received: side={side}")
    factor = full // side
    out = counts if factor == 1 and inplace else np.empty((len(counts),) + (side,) * ndim, np.float32)
    for i, cube in enumerate(counts):
        if in_counts:
            out[i] = forward(block_mean(cube.astype(np.float64), factor, ndim), config.transform)
        else:
            out[i] = block_mean(forward(cube, config.transform), factor, ndim)
    return out


def coarsen(levels: np.ndarray, factor: int, ndim: int, transform=None) -> np.ndarray:
    """The coarser level of transformed `levels` (leading axes carried), as `level_of` makes it:
    the block mean, or, given the `transform` of a count-space pyramid, the transform of the
    block's mean count. Training cuts its coarse windows from fine windows this way."""
    if transform is None:
        return block_mean(levels, factor, ndim)
    from nbgan_app.transforms import backward, forward

    return forward(block_mean(backward(levels, transform).astype(np.float64), factor, ndim), transform)
