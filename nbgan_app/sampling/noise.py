"""Latent noise that depends only on (seed, level, cube, patch index).

Every patch draws its own standard-normal latent from a NumPy generator seeded
by `SeedSequence([seed, level, cube, *index])`, so the cube a seed gives does
not depend on the order the patches are generated in, on the batch size, or on
an interruption and resume. The level is part of the key so that the levels of
one chain do not reuse the same noise. The uniforms that round a patch to
whole particles (`particles`) add one word to the patch's key.
"""

from __future__ import annotations

import numpy as np


def _rng(seed: int, level: int, cube: int, index: tuple[int, ...]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, level, cube, *index])))


def patch_latent(seed: int, level: int, cube: int, index: tuple[int, ...], patch: int) -> np.ndarray:
    """The (p, ..., p, 1) float32 latent channel of patch `index` of cube `cube` at `level`."""
    shape = (patch,) * len(index) + (1,)
    return _rng(seed, level, cube, index).standard_normal(shape, dtype=np.float32)


def cube_latent(seed: int, level: int, cube: int, latent_dim: int) -> np.ndarray:
    """The (latent_dim,) float32 latent vector of whole cube `cube` (M3)."""
    return _rng(seed, level, cube, ()).standard_normal((latent_dim,), dtype=np.float32)


# the last word of a patch's rounding key; nonzero, since SeedSequence pads a key with zeros
ROUNDING = 1


def patch_uniform(seed: int, level: int, cube: int, index: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Uniforms in [0, 1) (float64) that round patch `index` of cube `cube` at `level` to whole particles."""
    return _rng(seed, level, cube, tuple(index) + (ROUNDING,)).random(shape)
