"""Patch schedules: the order in which the patch grid of a level is generated.

A patch at grid index i (a d-tuple, d = 2 or 3) depends on its neighbours at
i + o for o in `windows.neighbour_offsets(d)`, all of which have a smaller
index sum. A schedule is a list of waves; every patch of a wave depends only
on patches of earlier waves, so one wave is one batched generator call.

- raster: one patch per wave, last axis fastest (the thesis and the release);
  n^d waves.
- wavefront: all patches with the same index sum form one wave; d(n-1)+1
  waves (3n-2 in 3-D, 2n-1 in 2-D).

`frontier_key` places a patch in a ring of d + 1 slots of (n^(d-1)) patch
positions that holds every patch a later one may still need, so a resumed run
reads its neighbours back exactly as generated (sampling.writer).
"""

from __future__ import annotations

import itertools

ORDERS = ("wavefront", "raster")


def grid(n: int, ndim: int) -> list[tuple[int, ...]]:
    """All patch indices of an n^d grid in raster order (last axis fastest)."""
    return list(itertools.product(range(n), repeat=ndim))


def waves(n: int, ndim: int, order: str) -> list[list[tuple[int, ...]]]:
    """The schedule of an n^d patch grid: a list of waves, each a list of patch indices."""
    if order == "raster":
        return [[index] for index in grid(n, ndim)]
    if order == "wavefront":
        by_sum: list[list[tuple[int, ...]]] = [[] for _ in range(ndim * (n - 1) + 1)]
        for index in grid(n, ndim):
            by_sum[sum(index)].append(index)
        return by_sum
    raise ValueError(f"Expected order in {ORDERS}. Received: order={order!r}")


def dependents(index: tuple[int, ...], n: int) -> int:
    """How many patches of the grid use `index` as a neighbour (those at index + {0,1}^d, minus itself)."""
    count = 1
    for i in index:
        count *= 2 if i + 1 < n else 1
    return count - 1


def frontier_slots(ndim: int) -> int:
    """Slots of the frontier ring: enough that a slot is reused only once nothing reads its old patches."""
    return ndim + 1


def frontier_key(index: tuple[int, ...], order: str) -> tuple[int, tuple[int, ...]]:
    """(slot, position) of patch `index` in the frontier ring of `order`.

    Wavefront: the patches generated while wave s runs read waves s-1 .. s-d
    only, so slot = s mod (d+1) overwrites wave s-d-1, which no one reads any
    more; within a wave the first d-1 indices fix the last. Raster: patches of
    plane i (first index) read planes i and i-1 only; slot = i mod (d+1),
    position = the other indices.
    """
    slots = frontier_slots(len(index))
    if order == "wavefront":
        return sum(index) % slots, tuple(index[:-1])
    if order == "raster":
        return index[0] % slots, tuple(index[1:])
    raise ValueError(f"Expected order in {ORDERS}. Received: order={order!r}")
