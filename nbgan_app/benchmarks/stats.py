"""Summary statistics on one realistic cube, against Pylians's power spectrum in the same run.

The cube is a lognormal mock with a cosmology-like spectrum (a Gaussian field
with P(k) ~ k^-2 above a turnover, exponentiated to unit log-variance, scaled
to 64 counts per voxel as in 1024^3 particles on a 256^3 grid, Poisson
sampled): clustered like an N-body cube, so the peak finder sees a realistic
number of peaks. Full run: 256^3; quick: 128^3.

Rows: our power spectrum (linear bins) against `Pk_library.Pk` (MAS 'None',
the same threads as our FFT, on the same float32 density contrast), our
released log-bin power spectrum, the mass histogram, the peak histogram, and
all three (`summary`). Medians of `repeats` runs after one warm-up call (our
binning tables are cached per grid; the first call's cost is in the note).
`ratio` is reference_s / ours_s: above 1 means we are faster.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import scipy.fft

MEAN_COUNT = 64.0
BOX_SIZE = 350.0


def lognormal_cube(n: int, seed: int = 0) -> np.ndarray:
    """A clustered count cube: Poisson draws of an exponentiated Gaussian field with P ~ k^-2."""
    rng = np.random.default_rng(seed)
    freqs = [np.fft.fftfreq(n)] * (2) + [np.fft.rfftfreq(n)]
    k2 = sum(f.reshape([-1 if a == i else 1 for a in range(3)]) ** 2 for i, f in enumerate(freqs))
    amplitude = 1.0 / (k2 + (2.0 / n) ** 2)  # sqrt of P ~ k^-4 smoothed: P ~ k^-2 in field terms
    noise = scipy.fft.rfftn(rng.normal(size=(n, n, n)).astype(np.float32), workers=-1)
    gauss = scipy.fft.irfftn(noise * np.sqrt(amplitude), s=(n, n, n), workers=-1)
    gauss = (gauss - gauss.mean()) / gauss.std()
    density = np.exp(gauss - 0.5)
    return rng.poisson(density * MEAN_COUNT).astype(np.float32)


def _median_time(call, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _row(name, ours_s, repeats, note, reference="", reference_s=None) -> dict:
    return {
        "benchmark": name,
        "ours_s": ours_s,
        "reference": reference,
        "reference_s": reference_s,
        "ratio": (reference_s / ours_s) if reference_s else None,
        "repeats": repeats,
        "note": note,
    }


def _pylians_row(cube, n, repeats, threads, ours_s, ours_power) -> dict:
    from nbgan_app.stats.power_spectrum import density_contrast

    name = f"stats.psd_linear_{n}"
    try:
        import Pk_library
    except ImportError:
        return _row(name, ours_s, repeats, "Pylians not installed (pip install nbgan[oracle])")
    delta = density_contrast(cube)
    ref_s, ref = _median_time(lambda: Pk_library.Pk(delta, BOX_SIZE, 0, "None", threads, False), repeats)
    worst = float(np.max(np.abs(ours_power / ref.Pk[:, 0] - 1)))
    note = f"{threads} threads each; max per-bin |P/P_pylians - 1| = {worst:.1e}"
    return _row(name, ours_s, repeats, note, "Pylians Pk_library.Pk (MAS None)", ref_s)


def run(quick: bool) -> list[dict]:
    from nbgan_app.stats.histograms import mass_histogram, peak_histogram
    from nbgan_app.stats.power_spectrum import power_spectrum
    from nbgan_app.stats.summary import summary

    n, repeats = (128, 3) if quick else (256, 3)
    threads = os.cpu_count() or 1
    cube = lognormal_cube(n)
    start = time.perf_counter()
    power_spectrum(cube, BOX_SIZE, bins="linear")
    first_s = time.perf_counter() - start
    power_spectrum(cube, BOX_SIZE, bins="log")  # warm the log-bin table too
    psd_s, psd = _median_time(lambda: power_spectrum(cube, BOX_SIZE, bins="linear"), repeats)
    rows = [_pylians_row(cube, n, repeats, threads, psd_s, psd.power)]
    rows[0]["note"] += f"; first call with binning table {first_s:.2f} s"
    log_s, _ = _median_time(lambda: power_spectrum(cube, BOX_SIZE, bins="log"), repeats)
    rows.append(_row(f"stats.psd_log_{n}", log_s, repeats, "released 49 log bins"))
    mass_s, _ = _median_time(lambda: mass_histogram(cube), repeats)
    rows.append(_row(f"stats.mass_hist_{n}", mass_s, repeats, "20 released bins"))
    peak_s, (_, peaks) = _median_time(lambda: peak_histogram(cube), repeats)
    rows.append(_row(f"stats.peak_hist_{n}", peak_s, repeats, f"5^3 neighbourhood, reflect; {int(peaks.sum())} peaks in range"))
    all_s, _ = _median_time(lambda: summary(cube, BOX_SIZE), repeats)
    rows.append(_row(f"stats.all_three_{n}", all_s, repeats, "summary(): log PSD + mass + peak histograms; target < 10 s at 256^3"))
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
