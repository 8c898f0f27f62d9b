"""Choosing one run's sampling-time latent scale on validation boxes (`nbgan latent-scale`).

The chain is sampled from latents, as `nbgan sample` makes it, once for each
candidate scale of the tuned run (the other runs keep theirs) and each
sampling seed, and scored against the validation boxes: fresh PM boxes with
the seeds right after the training suite's, which no run trains or monitors
on, and which are not the test boxes of the final table (`quality.test_boxes`).
A candidate's errors are medians over the seeds, since one draw of 32 cubes
is not a score (docs/quality.md). The chosen scale has the lowest mean of the
median power-spectrum, mass-histogram and peak-histogram errors (the
monitor's error, `best.monitor_error`); ties go to the scale nearest 1.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np

from nbgan_app.best import STATISTICS as CHOOSING  # the monitor error's three statistics choose
from nbgan_app.errors import InputError
from nbgan_app.study.quality import HEADLINE, score_row, seed_medians, validation_boxes


def choose_scale(chain: list[Path], scale: str, values: list[float], seeds: list[int], boxes: int,
                 n: int, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """The latent scale of the chain's run of `scale` with the lowest error on `boxes` validation boxes.

    `chain`: run directories, coarsest first, starting from latents (M3 or Mu);
    `n` cubes are drawn under each of `seeds` for each of `values`. Returns the
    record `latent_scale.write_choice` keeps: {"step", "latent_scale", "chosen_on",
    "sampling_seeds", "n_cubes", "table"}.
    """
    from nbgan_app.sampling.runs import checkpoint_of, load_run
    from nbgan_app.study.generate import load_step, run_steps

    runs = [load_run(path) for path in chain]
    tuned = [k for k, run in enumerate(runs) if run.scale == scale]
    if len(tuned) != 1:
        found = ", ".join(run.scale for run in runs)
        raise InputError(f"--scale {scale}: expected one run of that scale in the chain (scales {found})")
    k = tuned[0]
    # the generator chosen for is the one scored, even if its run trains on and keeps a new best meanwhile
    step = checkpoint_of(runs[k])[0]
    steps = [load_step(path, step if i == k else None) for i, path in enumerate(chain)]
    config = steps[-1].run.config
    real, box_size, described = validation_boxes(config, boxes, progress)
    table = []
    log(HEADER)
    for value in values:
        trial = steps[:k] + [dataclasses.replace(steps[k], latent_scale=value)] + steps[k + 1:]
        by_seed = [score_row(real, run_steps(trial, n, seed)[0], box_size) for seed in seeds]
        row = {"latent_scale": value, **seed_medians(by_seed),
               "by_seed": {str(seed): {name: r[name] for name in HEADLINE} for seed, r in zip(seeds, by_seed)}}
        row["error"] = float(np.mean([row[name] for name in CHOOSING]))
        table.append(row)
        log(format_row(row))
    best = min(table, key=lambda r: (r["error"], abs(math.log(r["latent_scale"]))))
    return {"step": step, "latent_scale": best["latent_scale"],
            "chosen_on": described, "sampling_seeds": list(seeds), "n_cubes": n, "table": table}


HEADER = ("| latent scale | PSD | mass | peaks | worst PSD bin below k_N/2 | mean counts | mean of the three |\n"
          "|---|---|---|---|---|---|---|")


def format_row(row: dict) -> str:
    """One candidate as a Markdown table row (under HEADER)."""
    cells = [f"{row['latent_scale']:g}"] + [f"{row[name]:.3f}" for name in CHOOSING]
    cells += [f"{row['psd_worst_large']:.3f}", f"x{row['mean_ratio']:.3f}", f"{row['error']:.3f}"]
    return "| " + " | ".join(cells) + " |"
