"""The resolution pyramid: block averaging down (the models up-sample with `windows.upsample`).

Levels are built in transformed space, as the released code does: I2 is the
block mean of the transformed I1 by a factor per axis, and so on. Spatial axes
are the last `ndim` axes of an array (ndim = 2 or 3); leading axes (a batch)
are carried through.
"""

from __future__ import annotations

import numpy as np


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

