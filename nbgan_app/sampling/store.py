"""The patch store: the generated patches of one level that later patches still need.

Patch i is a neighbour of the patches at i + {0,1}^d (minus itself) inside the
grid; once those are all generated it is dropped. With the wavefront order
the store holds the last d waves (diagonal slabs of the grid), with raster
order about one plane of patches: memory grows with the cube's face, not with
its volume. Values are in transformed space (what the generator sees).

`StoreCube` and `DatasetCube` present one cube of the store, or of an HDF5
dataset, as an array-like that `windows.extract_window` can cut windows from,
so sampling builds its windows with exactly the function training uses.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from nbgan_app.sampling.orders import dependents
from nbgan_app.windows import neighbour_offsets

Index = tuple[int, ...]


class PatchStore:
    """Patches of an n^d grid keyed by index, each an (N, p, ..., p) float32 array over the N cubes.

    Args:
        n: patches per side; patch: patch side; ndim: 2 or 3; n_cubes: N.
        fallback: `fallback(cube, index)` reads a finished patch that is not
            held (after a resume, the patches of earlier runs live only in the file).
    """

    def __init__(self, n: int, patch: int, ndim: int, n_cubes: int,
                 fallback: Callable[[int, Index], np.ndarray] | None = None):
        self.n, self.patch, self.ndim, self.n_cubes = n, patch, ndim, n_cubes
        self.fallback = fallback
        self._patches: dict[Index, np.ndarray] = {}
        self._remaining: dict[Index, int] = {}
        self.peak = 0  # most patch indices held at once
        self.fallback_reads = 0

    def __len__(self) -> int:
        return len(self._patches)

    def put(self, cube: int, index: Index, values: np.ndarray) -> None:
        """Keep patch `index` of cube `cube` if any later patch needs it."""
        if dependents(index, self.n) == 0:
            return
        if index not in self._patches:
            self._patches[index] = np.zeros((self.n_cubes,) + (self.patch,) * self.ndim, np.float32)
            self._remaining[index] = dependents(index, self.n)
            self.peak = max(self.peak, len(self._patches))
        self._patches[index][cube] = values

    def get(self, cube: int, index: Index) -> np.ndarray:
        """The (p, ..., p) patch `index` of cube `cube`."""
        if index in self._patches:
            return self._patches[index][cube]
        if self.fallback is None:
            raise KeyError(f"patch {index} is not in the store (generated out of order?)")
        self.fallback_reads += 1
        return self.fallback(cube, index)

    def finished(self, index: Index) -> None:
        """Record that patch `index` is done for every cube: its neighbours need one dependent fewer."""
        for offset in neighbour_offsets(self.ndim):
            j = tuple(i + o for i, o in zip(index, offset))
            if j in self._remaining:
                self._remaining[j] -= 1
                if self._remaining[j] == 0:
                    del self._remaining[j], self._patches[j]


class StoreCube:
    """Cube `cube` of a level as `extract_window` reads it: store patches, zeros at the (unmade) target."""

    def __init__(self, store: PatchStore, cube: int, target: Index):
        self.store, self.cube, self.target = store, cube, target
        self.shape = (store.n * store.patch,) * store.ndim
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, slices: tuple[slice, ...]) -> np.ndarray:
        p = self.store.patch
        out = np.zeros(tuple(s.stop - s.start for s in slices), np.float32)
        ranges = [range(s.start // p, s.stop // p) for s in slices]  # windows are patch aligned
        for index in np.ndindex(*(len(r) for r in ranges)):
            j = tuple(r[k] for r, k in zip(ranges, index))
            if j != self.target:
                out[tuple(slice(k * p, (k + 1) * p) for k in index)] = self.store.get(self.cube, j)
        return out


class DatasetCube:
    """Cube `cube` of an (N, S, ..., S) dataset (h5py or NumPy) as `extract_window` reads it."""

    def __init__(self, dataset, cube: int):
        self.dataset, self.cube = dataset, cube
        self.shape = tuple(dataset.shape[1:])
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, slices) -> np.ndarray:
        return np.asarray(self.dataset[(self.cube,) + tuple(slices)], dtype=np.float32)
