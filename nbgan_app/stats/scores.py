"""Scores of a fake set of cubes against a real set, with the real-vs-real floor.

For each statistic of `registry.STATISTICS` (power spectrum, mass histogram,
peak histogram):

- `score`: the released score, 1 / Frechet distance. Real and fake
  per-cube statistics are divided by the maximum of the real mean, mapped
  to `log10(y + 1e-5)`, a Gaussian (mean, covariance with ddof = 1) is
  fitted over cubes to each, and `frechet_distance` is the squared Frechet
  (2-Wasserstein) distance between the two Gaussians,
  `|mu_r - mu_f|^2 + Tr C_r + Tr C_f - 2 Tr (C_r^1/2 C_f C_r^1/2)^1/2`,
  as the release computes it. Higher score is better; identical sets score
  infinity (reported as null in JSON).
- `log_l2`: the released training monitor, the mean over bins of
  `(10 log10(real_mean + 0.01) - 10 log10(fake_mean + 0.01))^2`; the sum over
  statistics is `log_l2_total`.
- `frac_diff`: per bin, `(fake_mean - real_mean) / real_mean` (null where
  the real mean is 0), and `median_abs_frac_diff`, its median magnitude.

Rank-deficient covariances. With fewer cubes than bins (49 log PSD bins
against a handful of cubes) the fitted covariances are singular. The closed
form above stays exact for degenerate Gaussians as long as the matrix square
roots are the positive semi-definite ones, so we take them by symmetric
eigen-decomposition with eigenvalues clipped at 0 (round-off), instead of
`scipy.linalg.sqrtm(C_r C_f)` on a non-symmetric, singular product, which can
fail or return complex values. No ridge or shrinkage is added: a ridge would
shift every distance by an amount that depends on the number of bins.
The estimate itself is still noisy with few cubes, which is what the floor
is for.

The floor: the same scores between two disjoint, equal halves of the real
set, over `n_splits` random half-splits (seeded): subsampling without
replacement. A fake score means something only against it. Note the floor
compares n/2 against n/2 cubes, so with small sets it is the more
pessimistic of the two.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.stats import registry
from nbgan_app.stats.batching import as_batch
from nbgan_app.stats.summary import cube_statistics, describe, jsonable

LOG_OFFSET = 1e-5
MONITOR_OFFSET = 0.01
SCALAR_SCORES = ("frechet_distance", "score", "log_l2", "median_abs_frac_diff")
# fewest real cubes for the floor: it scores two disjoint halves, and a score needs 2 cubes a side
FLOOR_MIN = 4


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Positive semi-definite square root of a symmetric matrix (negative round-off clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Frechet distance between N(mu1, cov1) and N(mu2, cov2); exact for singular covariances."""
    root1 = psd_sqrt(cov1)
    cross = psd_sqrt(root1 @ cov2 @ root1)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(cross)
    return max(float(value), 0.0)  # round-off can dip below zero for near-equal sets


def released_score(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """(Frechet distance, 1 / distance) of per-cube statistics (B, n_bins), released normalisation."""
    scale = float(np.max(real.mean(axis=0)))
    scale = scale if scale > 0 else 1.0  # an all-zero statistic: leave it unscaled
    log_real = np.log10(real / scale + LOG_OFFSET)
    log_fake = np.log10(fake / scale + LOG_OFFSET)
    distance = frechet_distance(
        log_real.mean(axis=0),
        np.atleast_2d(np.cov(log_real, rowvar=False)),
        log_fake.mean(axis=0),
        np.atleast_2d(np.cov(log_fake, rowvar=False)),
    )
    return distance, (1.0 / distance if distance > 0 else math.inf)


def log_l2(real_mean: np.ndarray, fake_mean: np.ndarray) -> float:
    """The released training monitor for one statistic."""
    gap = 10 * np.log10(real_mean + MONITOR_OFFSET) - 10 * np.log10(fake_mean + MONITOR_OFFSET)
    return float(np.mean(gap**2))


def fractional_difference(real_mean: np.ndarray, fake_mean: np.ndarray) -> np.ndarray:
    """(fake - real) / real per bin; NaN where the real mean is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(real_mean != 0, (fake_mean - real_mean) / real_mean, np.nan)


def score_pair(real: np.ndarray, fake: np.ndarray) -> dict:
    """All scores of one statistic, fake per-cube samples against real ones."""
    real_mean, fake_mean = real.mean(axis=0), fake.mean(axis=0)
    distance, score = released_score(real, fake)
    frac = fractional_difference(real_mean, fake_mean)
    finite = np.abs(frac[np.isfinite(frac)])
    return {
        "frechet_distance": distance,
        "score": score,
        "log_l2": log_l2(real_mean, fake_mean),
        "median_abs_frac_diff": float(np.median(finite)) if finite.size else math.nan,
        "frac_diff": frac,
    }


def half_splits(n: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n_splits` random pairs of disjoint halves of range(n), each of n // 2 indices."""
    rng = np.random.default_rng(seed)
    half = n // 2
    splits = []
    for _ in range(n_splits):
        order = rng.permutation(n)
        splits.append((order[:half], order[half : 2 * half]))
    return splits


def _spread_of(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if not finite.size:
        return {"mean": None, "std": None, "p16": None, "p84": None}
    p16, p84 = np.percentile(finite, [16, 84])
    std = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
    return dict(zip(("mean", "std", "p16", "p84"), jsonable([finite.mean(), std, p16, p84])))


def floor_scores(samples: np.ndarray, splits) -> dict:
    """Real-vs-real scores of one statistic over the half-splits: spread of each scalar, per-bin frac_diff std."""
    runs = [score_pair(samples[a], samples[b]) for a, b in splits]
    floor = {name: _spread_of([run[name] for run in runs]) for name in SCALAR_SCORES}
    fracs = np.stack([run["frac_diff"] for run in runs])
    with warnings.catch_warnings():  # bins where the real mean is always 0 have no spread: null
        warnings.simplefilter("ignore", RuntimeWarning)
        floor["frac_diff_std"] = jsonable(np.nanstd(fracs, axis=0, ddof=1) if len(runs) > 1 else np.zeros(fracs.shape[1]))
    return floor


def check_sets(real: np.ndarray, fake: np.ndarray, with_floor: bool) -> None:
    """Raise InputError unless the grids agree and there are enough cubes for a score (and the floor)."""
    if real.shape[1:] != fake.shape[1:]:
        raise InputError(f"real and fake grids differ: real cubes {real.shape[1:]}, fake cubes {fake.shape[1:]}")
    for name, batch in (("real", real), ("fake", fake)):
        if len(batch) < 2:
            raise InputError(f"the {name} set has {len(batch)} cube; a score needs at least 2 (it fits a spread)")
    if with_floor and len(real) < FLOOR_MIN:
        raise InputError(f"the real-vs-real floor needs at least {FLOOR_MIN} real cubes (two halves of 2); "
                         f"received {len(real)}")


def _statistic_report(real, fake, splits) -> dict:
    """The JSON block of one statistic: axis, real and fake mean/std, scores, floor."""
    scores = score_pair(real.samples, fake.samples)
    report = describe(real)
    axis = report.pop(real.axis_name)
    report = {real.axis_name: axis, "real": report, "fake": describe(fake)}
    del report["fake"][fake.axis_name]
    report.update({name: jsonable([scores[name]])[0] for name in SCALAR_SCORES})
    report["frac_diff"] = jsonable(scores["frac_diff"])
    if splits is not None:
        report["floor"] = floor_scores(real.samples, splits)
    return report


def compare(
    real,
    fake,
    box_size: float,
    psd_bins: str = "log",
    ndim: int | None = None,
    floor: bool | None = None,
    n_splits: int = 20,
    seed: int = 0,
    peak_boundary: str = "reflect",
) -> dict:
    """Scores of `fake` cubes against `real` cubes per statistic, with the real-vs-real floor.

    Args:
        real, fake: batches of counts (batch axis first), same grid, 2-D or 3-D.
        box_size: box side in Mpc/h (both sets).
        psd_bins: "log" (released) or "linear".
        floor: also score disjoint halves of the real set: True requires >= 4
            real cubes (an InputError otherwise, as the CLI wants); None (default)
            adds the floor when there are >= 4 real cubes; False never.
        n_splits, seed: number of random half-splits for the floor, and their seed.

    Returns:
        {"box_size", "ndim", "n_real", "n_fake", "psd_bins", "floor_splits", "seed",
         "psd" | "mass_hist" | "peak_hist": {axis, "real": {mean, std},
         "fake": {mean, std}, "frechet_distance", "score", "log_l2",
         "median_abs_frac_diff", "frac_diff", "floor": {each scalar:
         {mean, std, p16, p84}, "frac_diff_std"}}, "log_l2_total",
         "floor_log_l2_total"}. Non-finite values are null.
    """
    real_batch, _ = as_batch(real, ndim, name="real counts")
    fake_batch, _ = as_batch(fake, ndim, name="fake counts")
    if real_batch.ndim != fake_batch.ndim:
        raise InputError(f"real cubes are {real_batch.ndim - 1}-D, fake cubes {fake_batch.ndim - 1}-D")
    if floor is None:
        floor = len(real_batch) >= FLOOR_MIN
    check_sets(real_batch, fake_batch, floor)
    d = real_batch.ndim - 1
    real_stats = cube_statistics(real_batch, box_size, psd_bins, d, peak_boundary)
    fake_stats = cube_statistics(fake_batch, box_size, psd_bins, d, peak_boundary)
    splits = half_splits(len(real_batch), n_splits, seed) if floor else None
    result: dict = {
        "box_size": float(box_size),
        "ndim": int(d),
        "n_real": int(len(real_batch)),
        "n_fake": int(len(fake_batch)),
        "psd_bins": psd_bins,
        "floor_splits": int(n_splits) if floor else 0,
        "seed": int(seed),
    }
    names = registry.names()
    for name in names:
        result[name] = _statistic_report(real_stats[name], fake_stats[name], splits)
    result["log_l2_total"] = sum(result[name]["log_l2"] for name in names)
    if floor:
        result["floor_log_l2_total"] = sum(result[name]["floor"]["log_l2"]["mean"] for name in names)
    return result
