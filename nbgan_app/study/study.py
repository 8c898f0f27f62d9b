"""The evaluation study (issue 7): what is compared with what, on which cubes, at what cost.

Cubes. The models train on the config's data as `nbgan train` does (the
last `data.held_out` cubes are its in-training monitor). The study scores
everything against a separate evaluation set: for a simulated config,
`study.eval_boxes` fresh PM boxes with seeds after the training suite's
(simulated into `<cache>-study-eval`), never seen in training; for a config
reading cube files, the config's held-out cubes. The floor is the scores
between random disjoint halves of that set.

Methods (each a "row"; every row is scored against the evaluation set at
its level, with the three scores, the fractional PSD error per k bin and
the floor):
- chain     M3 -> M2 -> M1 from latents (section 1, 3)
- mu        the uni-scale Mu, patch by patch from nothing (section 1, 3)
- m1-<arch> the evaluation cubes down-scaled to I2 and up-scaled by each
            architecture's M1 (section 2; the chain's one is also section 4)
- m2, m2-m1 the evaluation cubes down-scaled to I3, up-scaled by M2 (scored at
            I2) and then M1 (section 4)
- lognormal the mock of `mock.py` with the training cubes' spectrum (section 3)
- pm        the PM simulation itself: the training suite's boxes (section 3)
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from nbgan_app.config import Config
from nbgan_app.errors import InputError
from nbgan_app.pyramid import level_of
from nbgan_app.stats.scores import FLOOR_MIN
from nbgan_app.study import budgets, generate, mock
from nbgan_app.study.settings import StudyConfig
from nbgan_app.transforms import backward

RUNS = "runs"


def eval_simulation(config: Config, study: StudyConfig):
    """The simulation settings of the evaluation set: fresh seeds after the training suite's."""
    sim = config.data.simulation
    return dataclasses.replace(sim, cache=sim.cache.rstrip("/") + "-study-eval", boxes=study.eval_boxes,
                               seed=sim.seed + sim.boxes)


def time_simulation(sim) -> dict:
    """Seconds of one PM box: the first call (includes jit compilation if not yet done) and a repeat."""
    from nbgan_app.simulate import simulate_box

    times = []
    for _ in range(2):
        started = time.perf_counter()
        simulate_box(sim, 0)
        times.append(time.perf_counter() - started)
    return {"first_s": times[0], "per_cube_s": times[1]}


def evaluation_set(config: Config, study: StudyConfig, progress: bool) -> tuple[np.ndarray, dict]:
    """(evaluation counts, description of the split and of the PM cost)."""
    from nbgan_app.cubes import list_cube_files, load_cubes
    from nbgan_app.dataset import load_dataset, split_dataset
    from nbgan_app.simulate import simulate_suite

    counts, box_size = load_dataset(config, progress=progress)
    train_counts, held = split_dataset(config, counts)
    split = {"box_size": box_size, "n_train": len(train_counts), "n_monitor": len(held)}
    if config.data.simulation is None:
        if len(held) < FLOOR_MIN:
            raise InputError(f"data.held_out: {len(held)} held-out cubes; the study's floor needs at least "
                             f"{FLOOR_MIN}")
        return held, {**split, "eval": "the config's held-out cubes", "n_eval": len(held)}
    sim = eval_simulation(config, study)
    cache = config.resolve(sim.cache)
    evaluation, _ = load_cubes(list_cube_files(simulate_suite(sim, cache, progress=progress)), box_size)
    seeds = (sim.seed, sim.seed + sim.boxes - 1)
    split.update(eval=f"{sim.boxes} fresh PM boxes, seeds {seeds[0]}..{seeds[1]} ({sim.cache})",
                 n_eval=len(evaluation),
                 train_seeds=(config.data.simulation.seed, sim.seed - 1), pm=time_simulation(sim))
    return evaluation, split


def real_at(config: Config, counts: np.ndarray, side: int) -> np.ndarray:
    """Real cubes at a pyramid level, as counts (block means in transformed space, mapped back)."""
    return backward(level_of(config, counts, side), config.transform)


def row(name: str, label: str, fake: np.ndarray, seconds: float | None, time_note: str,
        training: list[str] = ()) -> dict:
    return {"name": name, "label": label, "fake": fake, "side": fake.shape[1],
            "seconds_per_cube": None if seconds is None else seconds / len(fake),
            "time_note": time_note, "training": list(training)}


def model_rows(config: Config, study: StudyConfig, root: Path, evaluation: np.ndarray) -> list[dict]:
    """The rows that need trained models (sections 1, 2, 4)."""
    steps = {spec.name: generate.load_step(root / spec.name) for spec in budgets.model_specs(config, study)}
    n, seed, batch = study.n_fake, study.seed, config.sample.max_batch
    m1 = budgets.m1_name(config.m1.architecture)
    sizes = config.pyramid.sizes
    rows = []
    fake, sec = generate.run_steps([steps["m3"], steps["m2"], steps[m1]], n, seed, max_batch=batch)
    rows.append(row("chain", "M3 -> M2 -> M1 (multi-scale)", fake, sec, "from latents", ["m3", "m2", m1]))
    fake, sec = generate.run_steps([steps["mu"]], n, seed, max_batch=batch)
    rows.append(row("mu", "Mu (uni-scale)", fake, sec, "from nothing", ["mu"]))
    coarse2 = level_of(config, evaluation, sizes[1])
    names = [budgets.m1_name(a) for a in study.architectures]
    for name in names + ([m1] if m1 not in names else []):
        fake, sec = generate.run_steps([steps[name]], len(evaluation), seed, coarse2, batch)
        rows.append(row(name, f"I2 -> M1 ({name[3:]})", fake, sec, "given I2", [name]))
    coarse3 = level_of(config, evaluation, sizes[2])
    fake, sec = generate.run_steps([steps["m2"]], len(evaluation), seed, coarse3, batch)
    rows.append(row("m2", "I3 -> M2", fake, sec, "given I3", ["m2"]))
    fake, sec = generate.run_steps([steps["m2"], steps[m1]], len(evaluation), seed, coarse3, batch)
    rows.append(row("m2-m1", "I3 -> M2 -> M1", fake, sec, "given I3", ["m2", m1]))
    return rows


def baseline_rows(config: Config, study: StudyConfig, split: dict) -> list[dict]:
    """The lognormal mock and the PM simulation itself (section 3)."""
    from nbgan_app.dataset import load_dataset, split_dataset

    counts, box_size = load_dataset(config, progress=False)
    train_counts, _ = split_dataset(config, counts)
    target = mock.measure_spectrum(train_counts, box_size)
    started = time.perf_counter()
    fake = mock.lognormal_mocks(target, study.n_fake, seed=study.seed)
    rows = [row("lognormal", "lognormal mock", fake, time.perf_counter() - started,
                "spectrum of the training cubes")]
    if "pm" in split:
        per_cube = split["pm"]["per_cube_s"]
        rows.append(row("pm", "PM simulation (jaxpm)", counts, per_cube * len(counts),
                        f"{len(counts)} boxes of the training suite; one box timed after compilation"))
    return rows


def score_rows(config: Config, study: StudyConfig, rows: list[dict], evaluation: np.ndarray,
               box_size: float) -> None:
    """Add `scores` (stats.scores.compare against the evaluation set at the row's level) to each row."""
    from nbgan_app.stats.scores import compare

    reals = {}
    for r in rows:
        side = r["side"]
        if side not in reals:
            reals[side] = real_at(config, evaluation, side)
        r["scores"] = compare(reals[side], r.pop("fake"), box_size, psd_bins=study.psd_bins, floor=True,
                              n_splits=study.floor_splits, seed=study.seed)


def run_study(config: Config, study: StudyConfig, out: Path, progress: bool = True,
              log=print) -> dict:
    """Train (or reuse) every model, generate, score; returns the results (no report written)."""
    started, load_start = time.time(), os.getloadavg()[0]
    log("evaluation set: simulating or loading")
    evaluation, split = evaluation_set(config, study, progress is not False)
    root = Path(out) / RUNS
    root.mkdir(exist_ok=True)  # the study's own layout: every model's run directory goes here
    training = {}
    for spec in budgets.model_specs(config, study):
        log(f"training {spec.name} (scale {spec.scale}): {spec.minutes:g} min or {spec.max_steps} steps")
        training[spec.name] = budgets.train_model(spec, root, progress=progress)
        log(f"  {spec.name}: {training[spec.name]['steps']} steps in {training[spec.name]['seconds']:.0f} s")
    log("generating and scoring")
    rows = model_rows(config, study, root, evaluation) + baseline_rows(config, study, split)
    score_rows(config, study, rows, evaluation, split["box_size"])
    from nbgan_app.training_setup import backend_name

    return {"config": config.source, "study": dataclasses.asdict(study), "split": split,
            "training": training, "rows": rows, "sizes": list(config.pyramid.sizes),
            "patch": config.pyramid.patch,
            "chain_m1": budgets.m1_name(config.m1.architecture), "backend": backend_name(),
            "cpus": os.cpu_count(), "wall_seconds": time.time() - started,
            "load_average": [load_start, os.getloadavg()[0]]}
