"""Mass and peak histograms: counts add up, planted peaks are found, boundaries matter."""

import numpy as np
import pytest

from nbgan_app.errors import InputError
from nbgan_app.stats.histograms import (
    MASS_EDGES,
    PEAK_EDGES,
    find_peaks,
    mass_histogram,
    peak_histogram,
    peak_values,
)


def test_released_bins():
    assert len(MASS_EDGES) == 21 and MASS_EDGES[0] == pytest.approx(np.log10(2))
    assert MASS_EDGES[-1] == pytest.approx(np.log10(250884 / 3))
    assert len(PEAK_EDGES) == 21 and (PEAK_EDGES[0], PEAK_EDGES[-1]) == (1.5, 13.0)


def test_mass_counts_sum_to_voxel_count_with_out_of_range_folded():
    rng = np.random.default_rng(0)
    cubes = rng.poisson(3.0, size=(3, 8, 8, 8)).astype(np.float32)
    cubes[0, 0, 0, 0] = 1e7  # above the last edge
    cubes[1] = 0.0  # below the first edge (log10 1 = 0 < log10 2)
    edges, hist = mass_histogram(cubes)
    assert hist.shape == (3, 20)
    np.testing.assert_array_equal(hist.sum(axis=1), [512, 512, 512])
    assert hist[0, -1] >= 1 and hist[1, 0] == 512


def test_mass_values_land_in_their_bin():
    edges = np.array([0.0, 1.0, 2.0, 3.0])  # log10(x + 1): x = 0 | 9 | 99 | 999 boundaries
    field = np.array([[0.0, 5.0], [9.0, 999.0]])
    _, hist = mass_histogram(field, edges=edges)
    np.testing.assert_array_equal(hist, [2, 1, 1])  # 999 sits on the closed last edge
    _, dropped = mass_histogram(field * 10, edges=edges, fold=False)
    assert dropped.sum() == 3  # 9990 falls outside and is dropped


def test_planted_peak_is_found():
    rng = np.random.default_rng(1)
    cube = rng.uniform(0, 1, size=(16, 16, 16)).astype(np.float32)
    cube[7, 8, 9] = 100.0
    mask = find_peaks(cube)
    assert mask[7, 8, 9]
    # no other peak within its 5^3 neighbourhood
    assert mask[5:10, 6:11, 7:12].sum() == 1
    _, hist = peak_histogram(cube)
    assert hist[np.searchsorted(PEAK_EDGES, np.log(100 + np.e)) - 1] == 1


def test_flat_neighbourhoods_are_not_peaks():
    assert not find_peaks(np.full((12, 12, 12), 4.0)).any()
    assert peak_histogram(np.zeros((12, 12, 12)))[1].sum() == 0


def test_periodic_and_reflecting_boundaries_differ():
    # A 5 at index 0 next (across the periodic boundary) to a 9 at index N-1.
    cube = np.ones((12, 12, 12), dtype=np.float32)
    cube[0, 6, 6] = 5.0
    cube[11, 6, 6] = 9.0
    reflect = find_peaks(cube, boundary="reflect")
    wrap = find_peaks(cube, boundary="wrap")
    assert reflect[0, 6, 6] and not wrap[0, 6, 6]
    assert reflect[11, 6, 6] and wrap[11, 6, 6]
    with pytest.raises(InputError, match="boundary"):
        find_peaks(cube, boundary="nearest-ish")


def test_peak_of_one_count_falls_below_the_released_range():
    cube = np.zeros((9, 9, 9))
    cube[4, 4, 4] = 1.0  # ln(1 + e) = 1.31 < 1.5
    assert peak_values(cube).tolist() == [1.0]
    assert peak_histogram(cube)[1].sum() == 0
    assert peak_histogram(cube, fold=True)[1][0] == 1


def test_two_dimensional_fields():
    field = np.zeros((16, 16))
    field[3, 4], field[11, 12] = 20.0, 50.0
    _, peaks = peak_histogram(field)
    assert peaks.sum() == 2
    _, mass = mass_histogram(field)
    assert mass.sum() == 256


def test_batch_matches_single_fields():
    rng = np.random.default_rng(2)
    cubes = rng.poisson(np.exp(rng.normal(size=(3, 12, 12, 12))) * 4)
    _, batch_mass = mass_histogram(cubes)
    _, batch_peaks = peak_histogram(cubes, boundary="wrap")
    for i in range(3):
        np.testing.assert_array_equal(mass_histogram(cubes[i])[1], batch_mass[i])
        np.testing.assert_array_equal(peak_histogram(cubes[i], boundary="wrap")[1], batch_peaks[i])


@pytest.mark.parametrize("call, message", [
    (lambda: mass_histogram(np.ones((4, 4, 4)), edges=[1.0, 0.5]), "increasing"),
    (lambda: mass_histogram(np.full((4, 4, 4), np.inf)), "NaN or infinite"),
    (lambda: peak_histogram(np.ones((0, 4, 4, 4))), "empty"),
])
def test_bad_input(call, message):
    with pytest.raises(InputError, match=message):
        call()
