"""Scores: the Frechet distance (also for singular covariances), the released score and monitor, compare()."""

import json

import numpy as np
import pytest
import scipy.linalg

from nbgan_app.errors import InputError
from nbgan_app.stats.scores import (
    compare,
    fractional_difference,
    frechet_distance,
    half_splits,
    log_l2,
    released_score,
)


def random_cov(rng, dim, rank=None):
    a = rng.normal(size=(dim, rank or dim))
    return a @ a.T / dim


def test_frechet_matches_the_sqrtm_formula_on_full_rank_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    c1, c2 = random_cov(rng, 6), random_cov(rng, 6)
    reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(reference, rel=1e-8)


def test_frechet_of_equal_covariances_is_the_mean_gap():
    rng = np.random.default_rng(1)
    c = random_cov(rng, 5)
    assert frechet_distance(np.zeros(5), c, np.full(5, 0.5), c) == pytest.approx(5 * 0.25, abs=1e-9)


def test_frechet_with_rank_deficient_covariances():
    # More bins than samples: covariances of rank 2 in 10 dimensions.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 10)), rng.normal(size=(3, 10)) * 2
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert np.linalg.matrix_rank(ca) == 2
    d_ab = frechet_distance(a.mean(0), ca, b.mean(0), cb)
    assert np.isfinite(d_ab) and d_ab > 0
    assert d_ab == pytest.approx(frechet_distance(b.mean(0), cb, a.mean(0), ca), rel=1e-6)
    assert frechet_distance(a.mean(0), ca, a.mean(0), ca) == pytest.approx(0.0, abs=1e-9)
    # Two 1-D degenerate Gaussians along orthogonal axes: W2^2 = s1^2 + s2^2 exactly.
    e1, e2 = np.diag([4.0, 0.0]), np.diag([0.0, 9.0])
    assert frechet_distance(np.zeros(2), e1, np.zeros(2), e2) == pytest.approx(13.0)


def test_released_score_prefers_the_closer_fake():
    rng = np.random.default_rng(3)
    real = np.exp(rng.normal(size=(20, 8)))
    close = np.exp(rng.normal(size=(20, 8)))
    far = np.exp(rng.normal(loc=1.0, size=(20, 8)))
    assert released_score(real, close)[1] > released_score(real, far)[1]
    distance, score = released_score(real, real)
    assert distance == pytest.approx(0.0, abs=1e-9) and score > 1e6


def test_log_l2_and_fractional_difference():
    real, fake = np.array([0.99, 9.99, 0.0]), np.array([9.99, 9.99, 1.0])
    # 10 log10(1) - 10 log10(10) = -10 in bin 0; 0 in bin 1; 10 log10(0.01) - 10 log10(1.01) in bin 2
    expected = (100 + 0 + (10 * np.log10(0.01) - 10 * np.log10(1.01)) ** 2) / 3
    assert log_l2(real, fake) == pytest.approx(expected)
    frac = fractional_difference(real, fake)
    assert frac[0] == pytest.approx(9.0 / 0.99) and frac[1] == 0 and np.isnan(frac[2])


def test_half_splits_are_disjoint_equal_and_seeded():
    splits = half_splits(9, 5, seed=4)
    for a, b in splits:
        assert len(a) == len(b) == 4 and not set(a) & set(b)
    again = half_splits(9, 5, seed=4)
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(splits, again))


def lognormal_cubes(n, sigma, seed, size=12):
    rng = np.random.default_rng(seed)
    return rng.poisson(np.exp(sigma * rng.normal(size=(n, size, size, size))) * 6).astype(np.float32)


def test_compare_layout_floor_and_ordering():
    real = lognormal_cubes(8, 1.0, seed=5)
    same = lognormal_cubes(6, 1.0, seed=6)
    different = lognormal_cubes(6, 1.6, seed=7)
    good = compare(real, same, 64.0, n_splits=6, seed=1)
    bad = compare(real, different, 64.0, n_splits=6, seed=1)
    json.dumps(good, allow_nan=False)  # strict JSON: non-finite values became null
    assert (good["n_real"], good["n_fake"], good["ndim"]) == (8, 6, 3)
    for name in ("psd", "mass_hist", "peak_hist"):
        block = good[name]
        axis = block["k"] if name == "psd" else block["edges"]
        assert len(block["frac_diff"]) == len(block["real"]["mean"]) == len(block["fake"]["std"])
        assert len(axis) == len(block["frac_diff"]) + (0 if name == "psd" else 1)
        assert set(block["floor"]) >= {"score", "frechet_distance", "log_l2", "median_abs_frac_diff", "frac_diff_std"}
        assert bad[name]["log_l2"] > good[name]["log_l2"]
    assert bad["mass_hist"]["score"] < good["mass_hist"]["score"]
    assert bad["psd"]["median_abs_frac_diff"] > good["psd"]["floor"]["median_abs_frac_diff"]["p84"]
    assert good["log_l2_total"] == pytest.approx(sum(good[n]["log_l2"] for n in ("psd", "mass_hist", "peak_hist")))


def test_compare_without_floor_and_in_2d():
    rng = np.random.default_rng(8)
    real = rng.poisson(5.0, size=(3, 16, 16)).astype(np.float32)
    fake = rng.poisson(5.0, size=(2, 16, 16)).astype(np.float32)
    result = compare(real, fake, 50.0)  # floor=None: only 3 real cubes, so no floor
    assert result["ndim"] == 2 and "floor" not in result["psd"] and "floor_log_l2_total" not in result
    assert result["floor_splits"] == 0
    assert "floor" in compare(np.concatenate([real, real[:1]]), fake, 50.0, n_splits=2)["psd"]


@pytest.mark.parametrize("real, fake, message", [
    (lognormal_cubes(4, 1.0, 0), lognormal_cubes(1, 1.0, 1), "fake set has 1 cube"),
    (lognormal_cubes(3, 1.0, 0), lognormal_cubes(2, 1.0, 1), "at least 4 real cubes"),
    (lognormal_cubes(4, 1.0, 0), lognormal_cubes(2, 1.0, 1, size=8), "grids differ"),
    (lognormal_cubes(4, 1.0, 0), np.full((2, 12, 12, 12), np.nan), "NaN"),
    (lognormal_cubes(4, 1.0, 0), np.zeros((0, 12, 12, 12)), "empty"),
])
def test_compare_bad_input(real, fake, message):
    with pytest.raises(InputError, match=message):
        compare(real, fake, 64.0, floor=True, n_splits=2)


def test_flat_scores_carry_the_median_error_and_its_floor():
    """The training monitor logs what the dashboard shows: the median error beside its floor."""
    from nbgan_app.evaluation import flat_scores
    from nbgan_app.stats.scores import compare

    rng = np.random.default_rng(3)
    real = rng.poisson(2.0, size=(4, 8, 8, 8)).astype(np.float32)
    fake = rng.poisson(3.0, size=(2, 8, 8, 8)).astype(np.float32)
    result = compare(real, fake, 64.0, floor=True, n_splits=3)
    flat = flat_scores(result)
    for name in ("psd", "mass_hist", "peak_hist"):
        assert flat[f"{name}_median_abs_frac_diff"] == result[name]["median_abs_frac_diff"]
        assert flat[f"{name}_floor_median_abs_frac_diff"] == result[name]["floor"]["median_abs_frac_diff"]["mean"]
    assert flat["mass_hist_median_abs_frac_diff"] > flat["mass_hist_floor_median_abs_frac_diff"]
