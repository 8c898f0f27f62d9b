"""Nearest-grid-point binning: equal to numpy.histogramdd, periodic wrap, chunking, bad positions."""

from __future__ import annotations

import numpy as np
import pytest

from nbgan_app.binning import CountBinner, bin_positions
from nbgan_app.errors import InputError


def histogramdd(positions, grid, box):
    return np.histogramdd(positions, bins=grid, range=[(0, box)] * positions.shape[1])[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("box, grid", [(128.0, 16), (100.0, 3), (350.0, 7), (1.0, 5)])
def test_equals_histogramdd_on_random_and_edge_positions(dtype, box, grid):
    rng = np.random.default_rng(grid)
    edges = np.linspace(0, box, grid + 1)
    # Edge values and their float neighbours are where a multiply-and-floor would misplace particles.
    special = np.concatenate([edges[:-1], np.nextafter(edges[1:], 0), np.nextafter(edges[:-1], np.inf),
                              np.nextafter(edges[1:], 0).astype(np.float32)])
    positions = np.concatenate([rng.choice(special, size=(3000, 3)), rng.random((3000, 3)) * box]).astype(dtype)
    positions = positions[(positions < box).all(axis=1)]
    counts = bin_positions(positions, grid, box, chunk=1000)
    assert counts.dtype == np.float32 and counts.shape == (grid,) * 3
    np.testing.assert_array_equal(counts, histogramdd(positions, grid, box))


def test_two_dimensional_positions_make_a_square():
    positions = np.random.default_rng(0).random((500, 2)) * 10.0
    np.testing.assert_array_equal(bin_positions(positions, 4, 10.0), histogramdd(positions, 4, 10.0))


def test_chunks_accumulate_to_the_whole():
    positions = np.random.default_rng(1).random((1000, 3)) * 50.0
    binner = CountBinner(8, 50.0)
    for start in range(0, 1000, 300):
        binner.add(positions[start:start + 300])
    assert binner.particles == 1000
    np.testing.assert_array_equal(binner.result(), bin_positions(positions, 8, 50.0))


def test_positions_at_the_box_edge_wrap_periodically():
    box = 64.0
    positions = np.array([[box, 0.0, 0.0], [-1e-7, 1.0, 1.0], [np.nextafter(box, 0), 0.0, 0.0]], np.float64)
    counts = bin_positions(positions, 4, box)
    assert counts[0, 0, 0] == 1  # x == L is x == 0
    assert counts[3, 0, 0] == 2  # just below 0 and just below L are the last cell
    assert counts.sum() == 3


def test_positions_outside_the_box_are_an_error_naming_source_and_count():
    positions = np.array([[1.0, 2.0, 3.0], [70.0, 1.0, 1.0], [1.0, -5.0, 1.0]])
    with pytest.raises(InputError, match=r"snap\.npy holds 2 particle coordinates outside the box"):
        bin_positions(positions, 4, 64.0, source="snap.npy")


def test_nan_positions_are_an_error():
    positions = np.array([[1.0, np.nan, 3.0], [1.0, 1.0, 1.0]])
    with pytest.raises(InputError, match="1 NaN"):
        bin_positions(positions, 4, 64.0)


def test_wrong_shape_is_an_error():
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        bin_positions(np.zeros((10, 4)), 4, 64.0)
