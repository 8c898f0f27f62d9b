"""One cube or a batch of cubes, 2-D or 3-D: the shape rule every statistic shares.

A statistic accepts a single field or a batch with the batch axis first. When
the caller does not say which (`ndim=None`), the rule of `nbgan_app.cubes`
applies: a 2-D array is one 2-D slice, a 4-D array a batch of 3-D cubes, and a
3-D array is one cube when its three sides are equal, otherwise a batch of
2-D slices. The one ambiguous case, a batch of G slices of G x G, needs
`ndim=2`.
"""

from __future__ import annotations

import numpy as np

from nbgan_app.errors import InputError


def as_batch(fields, ndim: int | None = None, name: str = "counts") -> tuple[np.ndarray, bool]:
    """Return `(batch, was_single)`: `batch` has shape (B, N, ..., N) with `ndim` spatial axes.

    Raises:
        InputError: not 2-D/3-D, not square/cubic, empty, `ndim` inconsistent,
            or holding NaN or infinite values.
    """
    array = np.asarray(fields)
    if array.dtype.kind not in "fiu":
        raise InputError(f"Expected numeric {name}. Received: dtype {array.dtype}")
    if ndim is None:
        if array.ndim == 3:
            ndim = 3 if len(set(array.shape)) == 1 else 2
        else:
            ndim = min(array.ndim, 3)
    if ndim not in (2, 3):
        raise InputError(f"Expected 2-D or 3-D fields. Received: {name} with shape {array.shape}")
    single = array.ndim == ndim
    if not single and array.ndim != ndim + 1:
        raise InputError(f"Expected {name} of {ndim} or {ndim + 1} axes. Received: shape {array.shape}")
    batch = array[None] if single else array
    spatial = batch.shape[1:]
    if batch.shape[0] == 0 or 0 in spatial:
        raise InputError(f"{name} is empty (shape {array.shape})")
    if len(set(spatial)) != 1:
        raise InputError(f"Expected a square or cubic grid. Received: {name} with shape {array.shape}")
    check_finite(batch, name)
    return batch, single


def check_finite(batch: np.ndarray, name: str = "counts") -> None:
    """Raise InputError when `batch` holds NaN or infinite values."""
    if not np.all(np.isfinite(batch)):
        raise InputError(f"{name} holds NaN or infinite values")


def unbatch(values: np.ndarray, single: bool) -> np.ndarray:
    """Drop the batch axis again when the input was a single field."""
    return values[0] if single else values
