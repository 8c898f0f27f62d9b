"""Power spectrum: analytic cases (white noise, plane waves), mode counting, Pylians as oracle."""

import numpy as np
import pytest

from nbgan_app.errors import InputError
from nbgan_app.stats.power_spectrum import density_contrast, power_spectrum

BOX = 64.0


def lognormal(shape, seed=0, mean=5.0):
    rng = np.random.default_rng(seed)
    return rng.poisson(np.exp(rng.normal(size=shape)) * mean).astype(np.float32)


@pytest.mark.parametrize("bins", ["log", "linear"])
def test_white_noise_is_flat_at_the_shot_noise_level(bins):
    # x = m + s * eps: delta has variance (s/m)^2; each mode has E|delta_k|^2 = N^3 (s/m)^2,
    # so P = V / N^6 * N^3 (s/m)^2 = (L/N)^3 (s/m)^2, the same at every k.
    n, m, s = 32, 10.0, 2.0
    rng = np.random.default_rng(1)
    cubes = m + s * rng.normal(size=(4, n, n, n))
    expected = (BOX / n) ** 3 * (s / m) ** 2
    ps = power_spectrum(cubes, BOX, bins=bins)
    mean_power = ps.power.mean(axis=0)
    overall = np.sum(mean_power * ps.n_modes) / ps.n_modes.sum()
    assert overall == pytest.approx(expected, rel=0.02)
    well_sampled = ps.n_modes >= 500  # 4 cubes x 500 modes: ~2% noise per bin
    assert well_sampled.sum() >= 5
    np.testing.assert_allclose(mean_power[well_sampled], expected, rtol=0.12)


@pytest.mark.parametrize("axis", [0, 2])
def test_plane_wave_puts_all_power_at_its_k(axis):
    # delta = A cos(2 pi 3 r / N): |delta_k| = A N^3 / 2 at k = +-3 k_F; one of the pair counts.
    n, amplitude, harmonic = 16, 0.5, 3
    r = np.arange(n)
    wave = 1 + amplitude * np.cos(2 * np.pi * harmonic * r / n)
    cube = np.broadcast_to(wave.reshape([-1 if a == axis else 1 for a in range(3)]), (n, n, n)) * 7.0
    ps = power_spectrum(cube, BOX, bins="linear")
    k_fundamental = 2 * np.pi / BOX
    peak = np.argmax(ps.power)
    assert harmonic * k_fundamental <= ps.k[peak] < (harmonic + 1) * k_fundamental  # bin k: mean |k| of its modes
    assert ps.power[peak] * ps.n_modes[peak] == pytest.approx(BOX**3 * amplitude**2 / 4, rel=1e-5)
    others = np.delete(ps.power, peak)
    assert np.all(others < 1e-9 * ps.power[peak])


def test_plane_wave_in_2d():
    n, amplitude = 32, 0.3
    r = np.arange(n)
    field = (1 + amplitude * np.cos(2 * np.pi * 5 * r / n))[None, :] * np.ones((n, 1)) * 3.0
    ps = power_spectrum(field, BOX, bins="linear")
    peak = np.argmax(ps.power)
    assert 5 <= ps.k[peak] / (2 * np.pi / BOX) < 6
    assert ps.power[peak] * ps.n_modes[peak] == pytest.approx(BOX**2 * amplitude**2 / 4, rel=1e-5)


@pytest.mark.parametrize("n, ndim, expected", [(16, 3, (16**3 + 6) // 2), (15, 3, (15**3 - 1) // 2), (16, 2, (16**2 + 2) // 2)])
@pytest.mark.parametrize("bins", ["log", "linear"])
def test_every_independent_mode_counted_once(n, ndim, expected, bins):
    # A real field has (N^d - 1) / 2 conjugate pairs besides k = 0, plus 2^d - 1 self-conjugate
    # Nyquist modes when N is even; each counts once, k = 0 not at all.
    ps = power_spectrum(lognormal((n,) * ndim), BOX, bins=bins, ndim=ndim)
    assert ps.n_modes.sum() == expected


def test_bins_cover_k_fundamental_to_the_corner():
    n = 32
    k_fundamental = 2 * np.pi / BOX
    for bins in ("log", "linear"):
        ps = power_spectrum(lognormal((n, n, n)), BOX, bins=bins)
        assert np.all(np.diff(ps.k) > 0)
        assert k_fundamental <= ps.k[0] < 2 * k_fundamental
        assert ps.k[-1] <= np.sqrt(3) * n / 2 * k_fundamental + 1e-12
    assert len(power_spectrum(lognormal((n, n, n)), BOX, bins="linear").k) == int(np.sqrt(3) * n / 2)
    assert len(power_spectrum(lognormal((n, n, n)), BOX, bins="log").k) <= 49


def test_batch_matches_single_cubes():
    cubes = lognormal((3, 16, 16, 16))
    batch = power_spectrum(cubes, BOX)
    assert batch.power.shape == (3, len(batch.k))
    for i in range(3):
        np.testing.assert_allclose(power_spectrum(cubes[i], BOX).power, batch.power[i], rtol=1e-6)


def test_batch_of_2d_slices_by_shape_and_by_ndim():
    slices = lognormal((3, 16, 16))
    assert power_spectrum(slices, BOX).power.shape[0] == 3  # unequal sides: a batch of 2-D slices
    single_cube = power_spectrum(lognormal((16, 16, 16)), BOX)
    as_slices = power_spectrum(lognormal((16, 16, 16)), BOX, ndim=2)
    assert single_cube.power.ndim == 1 and as_slices.power.shape[0] == 16


@pytest.mark.parametrize("call, message", [
    (lambda: power_spectrum(np.ones((8, 8, 8)), 0.0), "box size"),
    (lambda: power_spectrum(np.zeros((8, 8, 8)), BOX), "zero mean"),
    (lambda: power_spectrum(np.full((8, 8, 8), np.nan), BOX), "NaN"),
    (lambda: power_spectrum(np.ones((8, 8, 4, 2)), BOX), "cubic"),
    (lambda: power_spectrum(np.ones((8, 8, 8)), BOX, bins="cubic"), "bins"),
])
def test_bad_input(call, message):
    with pytest.raises(InputError, match=message):
        call()


@pytest.mark.parametrize("n", [32, 33])
def test_agrees_with_pylians(n):
    pkl = pytest.importorskip("Pk_library")
    cube = lognormal((n, n, n), seed=n)
    ours = power_spectrum(cube, BOX, bins="linear")
    theirs = pkl.Pk(density_contrast(cube), BOX, 0, "None", 1, False)
    np.testing.assert_array_equal(ours.n_modes, theirs.Nmodes3D)
    np.testing.assert_allclose(ours.k, theirs.k3D, rtol=1e-6)
    np.testing.assert_allclose(ours.power, theirs.Pk[:, 0], rtol=0.01)  # measured: ~1e-7


def test_agrees_with_pylians_in_2d():
    pkl = pytest.importorskip("Pk_library")
    field = lognormal((32, 32), seed=3)
    ours = power_spectrum(field, BOX, bins="linear")
    theirs = pkl.Pk_plane(density_contrast(field), BOX, "None", 1, False)
    np.testing.assert_array_equal(ours.n_modes, theirs.Nmodes)
    np.testing.assert_allclose(ours.power, theirs.Pk, rtol=0.01)
