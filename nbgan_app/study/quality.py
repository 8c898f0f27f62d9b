"""The quality table: generated cubes against fresh held-out PM boxes, beside the floor and the cheap mock.

Every row is a set of count cubes at the finest level, scored against the
evaluation boxes (never trained or monitored on) with `stats.scores.compare`
on linear k bins. "Error" is the median over bins of |fake mean / real mean - 1|
for the power spectrum, mass histogram and peak histogram. The floor is the
same error between random disjoint halves of the evaluation set, so a row at
the floor cannot be told from the simulations with this many boxes.

Two further checks of the power spectrum:
- `psd_worst_large`: the largest |fractional error| below k_Nyquist / 2
  (the issue's "no bin above 0.25" target);
- `seam_excess`: at the wavenumbers of the patch grid, 2 pi m / (patch side)
  for m = 1, 2, ..., the fractional error minus the mean of the two
  neighbouring bins, in units of the floor's spread there: patch seams show
  as a spike of power at exactly those k, and anything within 2 is noise.
"""

from __future__ import annotations

import math

import numpy as np

from nbgan_app.stats import registry
from nbgan_app.stats.scores import compare
from nbgan_app.stats.summary import jsonable

STATISTICS = ("psd", "mass_hist", "peak_hist")
MU_ROW = "Mu (uni-scale)"


def score_row(evaluation: np.ndarray, fake: np.ndarray, box_size: float, patch_mpc: float | None = None,
              n_splits: int = 20, seed: int = 0) -> dict:
    """Errors of one set of cubes against the evaluation boxes, with the floor measured on the same bins."""
    # the floor needs 4 real cubes (compare's own rule); without it there is no floor and no seam check
    result = compare(evaluation, fake, box_size, psd_bins="linear", floor=None, n_splits=n_splits, seed=seed)
    row = {name: result[name]["median_abs_frac_diff"] for name in registry.names()}
    has_floor = "floor" in result["psd"]
    if has_floor:
        row["floor"] = {name: result[name]["floor"]["median_abs_frac_diff"]["mean"] for name in registry.names()}
    k = np.asarray(result["psd"]["k"], dtype=float)
    frac = np.asarray([np.nan if v is None else v for v in result["psd"]["frac_diff"]], dtype=float)
    spread = np.asarray([np.nan if v is None else v for v in result["psd"]["floor"]["frac_diff_std"]]
                        if has_floor else np.full(len(k), np.nan), dtype=float)
    nyquist = math.pi * evaluation.shape[1] / box_size
    low = (k < nyquist / 2) & np.isfinite(frac)
    row["psd_worst_large"] = float(np.max(np.abs(frac[low]))) if low.any() else math.nan
    row["psd_k"], row["psd_frac"], row["psd_floor_std"] = jsonable(k), jsonable(frac), jsonable(spread)
    row["mean_ratio"] = float(np.mean(fake) / np.mean(evaluation))
    if patch_mpc and has_floor:
        row["seam_excess"] = seam_excess(k, frac, spread, 2 * math.pi / patch_mpc)
    return row


def seam_excess(k: np.ndarray, frac: np.ndarray, spread: np.ndarray, k_patch: float) -> float:
    """The largest spike of the PSD error at a multiple of `k_patch`, in floor spreads (see module doc)."""
    worst = 0.0
    for m in range(1, int(k[-1] / k_patch) + 1):
        i = int(np.argmin(np.abs(k - m * k_patch)))
        if 0 < i < len(k) - 1 and np.isfinite(spread[i]) and spread[i] > 0:
            spike = frac[i] - 0.5 * (frac[i - 1] + frac[i + 1])
            worst = max(worst, float(spike / spread[i]))
    return worst


def format_table(rows: dict[str, dict], n_real: int) -> str:
    """A plain-text table: one line per row, the errors and the floor."""
    width = max([len(name) for name in rows] + [len("floor (halves)")]) + 2
    header = f"{'':<{width}}{'PSD':>8}{'mass':>8}{'peaks':>8}{'PSD worst k<kN/2':>18}{'mean x':>8}"
    lines = [f"median |fractional error| against {n_real} fresh held-out PM boxes", header]
    for name, row in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{row[s]:>8.3f}" for s in STATISTICS)
                     + f"{row['psd_worst_large']:>18.3f}{row['mean_ratio']:>8.2f}")
    floor = next(iter(rows.values()))["floor"]
    lines.append(f"{'floor (halves)':<{width}}" + "".join(f"{floor[s]:>8.3f}" for s in STATISTICS))
    return "\n".join(lines)


def markdown_table(rows: dict[str, dict], n_real: int) -> list[str]:
    lines = [f"Median \\|fractional error\\| against {n_real} fresh held-out PM boxes (lower is better).", "",
             "| cubes | power spectrum | mass histogram | peak histogram | worst PSD bin below k_N/2 | mean counts |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[s]:.3f}" for s in STATISTICS)
                     + f" | {row['psd_worst_large']:.3f} | x{row['mean_ratio']:.2f} |")
    floor = next(iter(rows.values()))["floor"]
    lines.append("| floor (random halves of the held-out boxes) | "
                 + " | ".join(f"{floor[s]:.3f}" for s in STATISTICS) + " | | |")
    return lines


# Seeds of the test boxes start this far after the training suite's first seed: clear of the
# training suite and of the ablation's validation boxes, which directly follow the suite.
TEST_SEED_OFFSET = 100_000
# Seeds of a scale's fresh monitor boxes (`monitor_boxes`): after the suite and the validation boxes,
# before the test boxes.
MONITOR_SEED_OFFSET = 10_000


def fresh_boxes(config, n: int, suffix: str, seed_offset: int, progress: bool = True) -> tuple[np.ndarray, float, str]:
    """(counts, box size, description) of `n` PM boxes of the config's simulation with seeds from
    `seed + seed_offset`, cached in `<cache><suffix>`: boxes no model trains on."""
    import dataclasses

    from nbgan_app.cubes import list_cube_files, load_cubes
    from nbgan_app.errors import InputError
    from nbgan_app.simulate import simulate_suite

    sim = config.data.simulation
    if sim is None:
        raise InputError(f"{config.source or 'the config'}: fresh boxes are simulated; give a [data.simulation]")
    sim = dataclasses.replace(sim, cache=sim.cache.rstrip("/") + suffix, boxes=n, seed=sim.seed + seed_offset)
    files = simulate_suite(sim, config.resolve(sim.cache), progress=progress)
    counts, box_size = load_cubes(list_cube_files(files), sim.box_size)
    return counts, box_size, f"{n} fresh PM boxes, seeds {sim.seed}..{sim.seed + n - 1}"


# the errors a study reports as medians over sampling seeds (one draw of 32 cubes is not a score)
HEADLINE = ("psd", "mass_hist", "peak_hist", "psd_worst_large", "mean_ratio")


def seed_medians(rows: list[dict]) -> dict[str, float]:
    """The median over sampling seeds of each HEADLINE error of `score_row` rows, one row a seed."""
    return {name: float(np.median([r[name] for r in rows])) for name in HEADLINE}


def validation_boxes(config, n: int, progress: bool = True) -> tuple[np.ndarray, float, str]:
    """`n` validation boxes, cached in `<cache>-eval`: the seeds right after the training suite's.

    They choose among recipes and settings (the ablation, latent scales), so they are not the test boxes.
    """
    sim = config.data.simulation
    return fresh_boxes(config, n, "-eval", sim.boxes if sim else 0, progress)


def monitor_boxes(config, n: int, progress: bool = True) -> tuple[np.ndarray, float, str]:
    """`n` boxes a scale's training monitor scores against (its `monitor_boxes`), cached in `<cache>-monitor`."""
    return fresh_boxes(config, n, "-monitor", MONITOR_SEED_OFFSET, progress)


def test_boxes(config, n: int, progress: bool = True) -> tuple[np.ndarray, float, str]:
    """The final table's `n` test boxes, cached in `<cache>-test`."""
    return fresh_boxes(config, n, "-test", TEST_SEED_OFFSET, progress)


def model_rows(runs: dict, test: np.ndarray, n: int, seed: int = 1, log=print,
               chain: np.ndarray | None = None) -> dict:
    """Cubes of a chain's runs ({"m3", "m2", "m1"} and optionally "mu" -> run dir): the chain from
    latents (or `chain`, already sampled), the up-scalers given the test boxes' own coarser levels (the
    conditional evaluation), and Mu's cubes where it is given."""
    from nbgan_app.pyramid import level_of
    from nbgan_app.study.generate import load_step, run_steps

    steps = {name: load_step(path) for name, path in runs.items()}
    config = steps["m1"].run.config
    sizes = config.pyramid.sizes
    rows = {}
    if chain is None:
        chain, seconds = run_steps([steps["m3"], steps["m2"], steps["m1"]], n, seed)
        log(f"chain: {n} cubes in {seconds:.0f} s")
    rows["chain M3 -> M2 -> M1"] = chain
    rows["M2 -> M1 given I3"], _ = run_steps([steps["m2"], steps["m1"]], n, seed, level_of(config, test[:n], sizes[2]))
    rows["M1 given I2"], _ = run_steps([steps["m1"]], n, seed, level_of(config, test[:n], sizes[1]))
    if "mu" in steps:
        rows[MU_ROW], _ = run_steps([steps["mu"]], n, seed)
    return rows
