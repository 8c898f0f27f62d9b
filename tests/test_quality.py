"""The quality table: errors against held-out boxes, the floor beside them, and the seam check."""

from __future__ import annotations

import numpy as np

from nbgan_app.study import quality


def _cubes(seed, n=8, side=32, mean=1.0):
    return np.random.default_rng(seed).poisson(mean, (n,) + (side,) * 3).astype(np.float32)


def test_a_set_like_the_real_one_scores_near_the_floor_and_a_biased_one_does_not():
    real, same = _cubes(0), _cubes(1)
    row = quality.score_row(real, same, box_size=64.0, patch_mpc=16.0)
    assert row["psd"] < 3 * row["floor"]["psd"] + 0.02
    assert abs(row["mean_ratio"] - 1) < 0.01
    biased = quality.score_row(real, _cubes(2, mean=1.5), box_size=64.0)
    assert biased["mass_hist"] > 5 * row["mass_hist"] and biased["mean_ratio"] > 1.4
    assert "seam_excess" not in biased


def test_seams_at_the_patch_period_are_flagged():
    real, fake = _cubes(0), _cubes(1)
    side, patch = 32, 8  # 64 Mpc/h box: patches of 16 Mpc/h
    seams = fake.copy()
    planes = np.arange(0, side, patch)
    for axis in range(1, 4):  # extra particles on every patch face, as a seam would leave
        index = [slice(None)] * 4
        index[axis] = planes
        seams[tuple(index)] += 3
    clean = quality.score_row(real, fake, 64.0, patch_mpc=16.0)["seam_excess"]
    flagged = quality.score_row(real, seams, 64.0, patch_mpc=16.0)["seam_excess"]
    assert clean < 2 < flagged


def test_tables_name_every_row_and_the_floor():
    real = _cubes(0)
    rows = {"chain": quality.score_row(real, _cubes(1), 64.0), "mock": quality.score_row(real, _cubes(2), 64.0)}
    text = quality.format_table(rows, len(real))
    assert "chain" in text and "mock" in text and "floor" in text
    markdown = quality.markdown_table(rows, len(real))
    assert sum(line.startswith("| chain") or line.startswith("| mock") for line in markdown) == 2
