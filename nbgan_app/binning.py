"""Periodic nearest-grid-point binning of particle positions into count cubes.

Conventions: positions are in the units of the box side `box_size` (Mpc/h for
everything nbgan writes) and lie in [0, box_size) per axis. Cell `i` along an
axis holds the particles with `edges[i] <= x < edges[i + 1]`, where `edges =
numpy.linspace(0, box_size, grid + 1)` - exactly the cells of
`numpy.histogramdd(..., bins=grid, range=[(0, box_size)] * 3)`, so both agree
to the last particle. The box is periodic: positions within a small tolerance
outside [0, box_size) (rounding in the snapshot writer, x == box_size) are
wrapped; positions further out, or NaN, are an error.

`CountBinner` accumulates chunks one at a time, so memory is bounded by the
chunk size, not by the particle count. The fast path is one `numpy.bincount`
of linearised cell indices per chunk. The cell of each coordinate is a
multiply-and-floor in the input's own dtype; the rare coordinates within a few
ulps of a cell edge are redone by exact comparison with the edges, which is
what makes the result equal histogramdd's whatever the rounding.
"""

from __future__ import annotations

import numpy as np

from nbgan_app.errors import InputError

# Positions this far outside [0, L) (relative to L) are wrapped, not rejected:
# float32 snapshots routinely hold x == L or -0.0 after rounding.
WRAP_TOLERANCE = 1e-5
DEFAULT_CHUNK = 1 << 21  # particles per chunk read: ~25 MB of float32 input, 16 MB of indices
BLOCK = 1 << 16  # particles per vectorised step inside a chunk


class CountBinner:
    """Accumulates particle counts on a periodic G^3 (or G^2) grid, chunk by chunk.

    Args:
        grid: cells per side.
        box_size: box side, in the units of the positions.
        ndim: 3 for cubes (positions (N, 3)), 2 for slices (positions (N, 2)).
    """

    def __init__(self, grid: int, box_size: float, ndim: int = 3):
        if grid <= 0:
            raise InputError(f"Expected grid > 0. Received: grid={grid}")
        if not box_size > 0:
            raise InputError(f"Expected box_size > 0. Received: box_size={box_size}")
        self.grid = int(grid)
        self.box_size = float(box_size)
        self.ndim = int(ndim)
        self.counts = np.zeros(self.grid**self.ndim, dtype=np.int64)
        self.particles = 0
        self._edges = np.linspace(0.0, self.box_size, self.grid + 1)  # histogramdd's edges

    def add(self, positions: np.ndarray, source: str = "positions") -> None:
        """Bin one chunk of positions, shape (n, ndim); `source` names the input in errors."""
        positions = np.asarray(positions)
        if positions.ndim != 2 or positions.shape[1] != self.ndim:
            raise InputError(f"{source}: expected positions of shape (N, {self.ndim}). "
                             f"Received: shape={positions.shape}")
        if positions.dtype not in (np.float32, np.float64):
            positions = positions.astype(np.float64)
        linear = np.empty(positions.shape[0], dtype=np.intp)
        # Blocks small enough for the temporaries to stay in cache: ~3x faster than whole-chunk maths.
        for start in range(0, positions.shape[0], BLOCK):
            block = self._checked(positions[start:start + BLOCK], source)
            self._linear_cells(block, linear[start:start + BLOCK])
        self.counts += np.bincount(linear, minlength=self.counts.size)
        self.particles += positions.shape[0]

    def result(self) -> np.ndarray:
        """The counts as float32 of shape (grid,) * ndim."""
        return self.counts.reshape((self.grid,) * self.ndim).astype(np.float32)

    def _linear_cells(self, x: np.ndarray, out: np.ndarray) -> None:
        """Write the C-order linear cell index of each row of `x` (n, ndim) into `out`."""
        dtype = x.dtype.type
        t = x * dtype(self.grid / self.box_size)
        floor = np.floor(t)
        # Rounding can move t across an integer only when it lies within a few ulps of
        # one; those few coordinates get the exact comparison against the edges.
        near_edge = np.abs(t - floor - dtype(0.5)) > dtype(0.5 - self.grid * np.finfo(dtype).eps * 8)
        cells = floor.astype(np.int32)
        np.minimum(cells, self.grid - 1, out=cells)
        if near_edge.any():
            index = np.flatnonzero(near_edge)
            cells.ravel()[index] = self._exact_cells(x.ravel()[index])
        np.copyto(out, cells[:, 0])
        for axis in range(1, self.ndim):
            out *= self.grid
            out += cells[:, axis]

    def _exact_cells(self, x: np.ndarray) -> np.ndarray:
        """Cells of a few coordinates by comparison with the edges (float64 compare: exact)."""
        return np.clip(np.searchsorted(self._edges, x, side="right") - 1, 0, self.grid - 1)

    def _checked(self, x: np.ndarray, source: str) -> np.ndarray:
        """`x` with out-of-box values within the tolerance wrapped; InputError for the rest."""
        low, high = x.min(initial=0), x.max(initial=0)
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputError(f"{source} holds {int(np.count_nonzero(~np.isfinite(x)))} NaN or infinite "
                             "particle coordinates")
        if low >= 0 and high < self.box_size:
            return x
        tol = WRAP_TOLERANCE * self.box_size
        outside = int(np.count_nonzero((x < -tol) | (x >= self.box_size + tol)))
        if outside:
            raise InputError(f"{source} holds {outside} particle coordinates outside the box "
                             f"[0, {self.box_size:g}) (range {low:g} to {high:g}); check the box size")
        length = x.dtype.type(self.box_size)
        x = np.where(x < 0, x + length, x)
        # -tiny + L can round to L itself: that position belongs to cell 0, like x == L.
        return np.where(x >= length, x - length, x)


def bin_positions(positions: np.ndarray, grid: int, box_size: float,
                  chunk: int = DEFAULT_CHUNK, source: str = "positions") -> np.ndarray:
    """Nearest-grid-point counts of `positions` (N, 2 or 3) in a periodic box, float32 (grid,)*ndim.

    Works on memory-mapped arrays too: only `chunk` rows are in memory at once.
    """
    positions = positions if isinstance(positions, np.memmap) else np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] not in (2, 3):
        raise InputError(f"{source}: expected positions of shape (N, 3). Received: shape={positions.shape}")
    binner = CountBinner(grid, box_size, ndim=positions.shape[1])
    for start in range(0, positions.shape[0], chunk):
        binner.add(np.asarray(positions[start:start + chunk]), source)
    return binner.result()
