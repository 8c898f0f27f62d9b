"""The cheap alternative: lognormal mocks with the measured power spectrum (Coles & Jones 1991).

Construction (the standard one, as in Agrawal et al. 2017, on the periodic grid):
1. Target: the mean power spectrum P(k) of the training cubes (counts, linear
   bins of width k_F), minus the Poisson shot noise V / N_particles, so that
   step 5 adds it back; interpolated in |k| onto every grid mode, P(0) = 0.
2. Its correlation function on the grid, xi(r) = sum_k P(k) e^{ikr} / V.
3. The Gaussian field's correlation xi_G = ln(1 + xi), and its spectrum
   P_G(k) = V / N^d * FFT(xi_G); modes where P_G < 0 (a spectrum that no
   lognormal field has exactly) are set to 0.
4. A Gaussian field G with spectrum P_G (white noise coloured in Fourier
   space); 1 + delta = exp(G - sigma_G^2 / 2), rescaled to mean exactly 1 per cube.
5. Counts drawn Poisson with mean nbar (1 + delta), nbar the mean count per
   voxel of the training cubes: the right mean, and the discreteness of particles.

Units: k in h/Mpc, P in (Mpc/h)^d, box side L in Mpc/h; delta_k is the
unnormalised FFT, P = V |delta_k|^2 / N^(2d) (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nbgan_app.stats.power_spectrum import power_spectrum


@dataclass(frozen=True)
class MockSpectrum:
    """What a mock needs: the measured spectrum and mean count of the cubes it imitates."""

    k: np.ndarray  # h/Mpc, bin centres
    power: np.ndarray  # (Mpc/h)^d, mean over cubes, shot noise included
    mean_count: float  # particles per voxel
    grid: int  # voxels per side
    box_size: float  # Mpc/h
    ndim: int = 3

    @property
    def shot_noise(self) -> float:
        """Poisson shot noise V / N_particles in (Mpc/h)^d."""
        return self.box_size**self.ndim / (self.mean_count * self.grid**self.ndim)


def measure_spectrum(counts: np.ndarray, box_size: float) -> MockSpectrum:
    """The mock target of a batch of count cubes (B, N, ..., N)."""
    ndim = counts.ndim - 1
    spectrum = power_spectrum(counts, box_size, bins="linear", ndim=ndim)
    return MockSpectrum(spectrum.k, spectrum.power.mean(axis=0), float(counts.mean()), counts.shape[1],
                        float(box_size), ndim)


def mode_k(grid: int, box_size: float, ndim: int) -> np.ndarray:
    """|k| in h/Mpc of every mode of the full complex FFT of an N^ndim grid."""
    freq = np.fft.fftfreq(grid, d=1.0 / grid) * (2 * np.pi / box_size)
    k2 = sum(np.reshape(freq**2, [-1 if a == axis else 1 for a in range(ndim)]) for axis in range(ndim))
    return np.sqrt(k2)


def gaussian_spectrum(target: MockSpectrum) -> np.ndarray:
    """P_G on every grid mode (steps 1-3 of the module docstring), (Mpc/h)^d."""
    n, d, volume = target.grid, target.ndim, target.box_size**target.ndim
    clustering = np.clip(target.power - target.shot_noise, 0.0, None)
    k = mode_k(n, target.box_size, d)
    grid_power = np.interp(k, target.k, clustering)
    grid_power.flat[0] = 0.0  # the mean is fixed separately
    xi = np.fft.ifftn(grid_power).real * n**d / volume
    xi_gauss = np.log1p(np.clip(xi, -0.999, None))  # xi > -1 for any density field; clip round-off
    power_gauss = np.fft.fftn(xi_gauss).real * volume / n**d
    power_gauss.flat[0] = 0.0
    return np.clip(power_gauss, 0.0, None)


def lognormal_mocks(target: MockSpectrum, n_cubes: int, seed: int = 0) -> np.ndarray:
    """`n_cubes` count cubes (n_cubes, N, ..., N) float32 with the target's spectrum and mean."""
    n, d, volume = target.grid, target.ndim, target.box_size**target.ndim
    power_gauss = gaussian_spectrum(target)
    variance = power_gauss.sum() / volume  # sigma_G^2 = xi_G(0) of the field actually drawn
    amplitude = np.sqrt(power_gauss * n**d / volume)  # white noise has E|W_k|^2 = N^d
    rng = np.random.default_rng(seed)
    cubes = np.empty((n_cubes,) + (n,) * d, np.float32)
    for i in range(n_cubes):
        white = rng.standard_normal((n,) * d)
        gauss = np.fft.ifftn(np.fft.fftn(white) * amplitude).real
        density = np.exp(gauss - variance / 2)
        density /= density.mean()
        cubes[i] = rng.poisson(target.mean_count * density)
    return cubes


def lognormal_mock(counts: np.ndarray, n_cubes: int, box_size: float, seed: int = 0) -> np.ndarray:
    """`n_cubes` lognormal mocks imitating the count cubes `counts` (B, N, ..., N): their spectrum and mean."""
    return lognormal_mocks(measure_spectrum(counts, box_size), n_cubes, seed)
