"""The quality ablation: variants of a config trained on equal step budgets, scored on fresh boxes.

Each variant is the base config with some keys replaced (a dotted key per
override, e.g. {"transform.scale": 1.0, "m1.upscaler": "residual"}). Every
variant trains the same scale for the same generator steps from the same seed
into its own run directory (`training.train`, so it resumes), and every
checkpoint it keeps is scored against an evaluation set of fresh PM boxes that
no variant trains or monitors on:
- M3 draws `n` cubes from latents and is scored at level 3;
- M2 and M1 up-scale the evaluation boxes' own coarser level (the thesis's
  conditional evaluation) and are scored at their level.
The score is the median over bins of |fake mean / real mean - 1| for each
statistic (`stats.scores.compare`, linear k bins), with the wall-clock time
of training up to that checkpoint, so every variant gets a quality-against-
time curve.

A plan may score each checkpoint under several sampling seeds
(`sampling_seeds`, default [0]). One draw of 32 cubes is not a score: the
histograms' last bins hold a handful of peaks in all the boxes, and which way
they fall moves the median over bins (docs/quality.md, "One sampling seed is
not a score"). A record then holds the median over seeds of each headline
error, each seed's errors under `by_seed`, and the mean over seeds of the
per-bin PSD error.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from nbgan_app.config import Config, parse_config, project_root, read_config_table, read_toml
from nbgan_app.errors import InputError
from nbgan_app.scales import of_section, scale as scale_of
from nbgan_app.stats.summary import jsonable
from nbgan_app.study.quality import HEADLINE, score_row, seed_medians


def override(table: dict, overrides: dict) -> dict:
    """A copy of a config table with dotted keys replaced ("m1.upscaler" -> table["m1"]["upscaler"])."""
    table = copy.deepcopy(table)
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node = table
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return table


def variant_config(base: Path, overrides: dict, steps: int) -> Config:
    table = override(read_config_table(base), {**overrides, "train.steps": steps})
    return parse_config(table, project_root(base), base.resolve())


def score_run(run_dir: Path, scale: str, evaluation: np.ndarray, box_size: float, n: int,
              seeds: tuple[int, ...] = (0,)) -> dict:
    """Errors of the run's latest checkpoint against the evaluation counts at the scale's level.

    The latest, not the best generator that sampling prefers: a curve must show what training did
    by each step, and a run that only evaluates at its end keeps its first segment's generator as best.
    Each sampling seed draws its own `n` cubes; see the module doc for how seeds combine.
    """
    from nbgan_app.checkpoints import latest_checkpoint
    from nbgan_app.pyramid import level_of
    from nbgan_app.study.generate import load_step, run_steps
    from nbgan_app.transforms import backward

    latest = latest_checkpoint(run_dir)[0]
    step = load_step(run_dir, latest)
    config = step.run.config
    side = config.level_size(scale)
    real = backward(level_of(config, evaluation, side), config.transform)
    coarse = None
    if scale_of(scale).conditional:
        coarse = level_of(config, evaluation[:n], side // config.factor(scale))
    rows, seconds = [], 0.0
    for seed in seeds:
        fake, took = run_steps([step], n, seed, coarse)
        rows.append(score_row(real, fake, box_size))
        seconds += took
    scores = {**rows[0], **seed_medians(rows)}
    frac = np.array([r["psd_frac"] for r in rows], dtype=np.float64)  # null (no power) reads as NaN
    scores["psd_frac"] = jsonable(np.mean(frac, axis=0))
    scores["sampling_seeds"] = list(seeds)
    scores["by_seed"] = {name: [r[name] for r in rows] for name in HEADLINE}
    scores["sample_seconds"] = seconds
    scores["checkpoint_step"] = latest
    scores["counts"] = config.sample.counts  # whole particles or expected counts (`sampling.particles`)
    return scores


def run_variant(base: Path, name: str, overrides: dict, scale: str, segments: list[int], out: Path,
                evaluation: np.ndarray, box_size: float, n: int, log=print,
                seeds: tuple[int, ...] = (0,)) -> list[dict]:
    """Train one variant segment by segment (resuming), scoring after each; results to out/name.jsonl.

    Segments already scored in the results file are skipped, so a rerun continues the curve.
    """
    from nbgan_app.rundir import read_metrics, training_seconds
    from nbgan_app.training import train

    results_path = out / f"{name}.jsonl"
    done = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    for steps in segments:
        if any(r["step"] == steps for r in done):
            continue
        config = variant_config(base, overrides, segments[-1])
        config = dataclasses.replace(config, train=dataclasses.replace(
            config.train, eval_every=config.train.log_every * 10**6))
        state = train(config, scale, out / name, steps=steps, progress=False)
        seconds = training_seconds(read_metrics(out / name))  # a run stopped and resumed counts what it trained
        if state["step"] < steps:  # stopped early (a signal): score nothing the segment did not reach
            log(f"{name} stopped at step {state['step']} before {steps}; rerun to continue")
            return done
        record = {"variant": name, "overrides": overrides, "scale": scale, "step": steps,
                  "train_seconds": seconds, **score_run(out / name, scale, evaluation, box_size, n, seeds)}
        done.append(record)
        with results_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        log(f"{name} step {steps} ({seconds:.0f} s): psd {record['psd']:.3f} mass {record['mass_hist']:.3f} "
            f"peak {record['peak_hist']:.3f} mean x{record['mean_ratio']:.2f}")
    return done


def evaluation_boxes(base: Path, boxes: int, progress: bool = True) -> tuple[np.ndarray, float]:
    """The validation boxes: seeds right after the training suite's (cache `<cache>-eval`), never trained on."""
    from nbgan_app.config import load_config
    from nbgan_app.study.quality import validation_boxes

    counts, box_size, _ = validation_boxes(load_config(base), boxes, progress)
    return counts, box_size


def read_plan(path: Path) -> dict:
    """The ablation plan: {"base", "eval_boxes", "n_fake", "sampling_seeds", sections {"m1": [variants], ...}}."""
    table = read_toml(path, "ablation plan")
    settings = table.get("ablation", {})
    if "base" not in settings:
        raise InputError(f"{path}: [ablation] needs base = \"<config path>\"")
    sections = {}
    for key, variants in table.items():
        if key == "ablation":
            continue
        if key not in SECTIONS:
            raise InputError(f"{path}: unknown section [[{key}]] (known: {', '.join(SECTIONS)})")
        for v in variants:
            if "name" not in v or "segments" not in v:
                raise InputError(f"{path}: every [[{key}]] variant needs name and segments")
        sections[key] = variants
    seeds = settings.get("sampling_seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(type(x) is int and x >= 0 for x in seeds)
            and len(set(seeds)) == len(seeds)):
        raise InputError(f"{path}: [ablation] sampling_seeds: expected a list of distinct seeds >= 0, "
                         f"e.g. [1, 2, 3]. Received: {seeds!r}")
    return {"base": project_root(path) / settings["base"], "eval_boxes": int(settings.get("eval_boxes", 32)),
            "n_fake": int(settings.get("n_fake", 32)), "sampling_seeds": tuple(seeds), "sections": sections}


SECTIONS = ("m3", "m2", "m1")  # the models an ablation varies (Mu is the uni-scale comparison only)


def run_plan(path: Path, out: Path, sections: list[str] | None = None, log=print) -> dict:
    """Every variant of the plan's sections (all by default), one after another; returns the results."""
    plan = read_plan(path)
    evaluation, box_size = evaluation_boxes(plan["base"], plan["eval_boxes"], progress=False)
    results = {}
    for section in sections or list(plan["sections"]):
        if section not in plan["sections"]:
            raise InputError(f"{path}: no [[{section}]] variants")
        for v in plan["sections"][section]:
            (Path(out) / section).mkdir(parents=True, exist_ok=True)  # the plan's own layout
            records = run_variant(
                plan["base"], v["name"], v.get("overrides", {}), of_section(section).name, v["segments"],
                Path(out) / section, evaluation, box_size, plan["n_fake"], log=log, seeds=plan["sampling_seeds"])
            results[(section, v["name"])] = records
            if not set(v["segments"]) <= {r["step"] for r in records}:  # stopped (a signal): so is the plan
                return results
    return results


def read_results(out: Path) -> dict[str, list[dict]]:
    """{section/variant: [records by segment]} from the results files under `out`."""
    found = {}
    for path in sorted(Path(out).glob("*/*.jsonl")):
        found[f"{path.parent.name}/{path.stem}"] = [json.loads(x) for x in path.read_text().splitlines() if x]
    return found


def curves_figure(out: Path, path: Path) -> Path:
    """Quality against training wall-clock, one panel per statistic, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = read_results(out)
    markers = "osv^DPX*"
    # the legend goes under the panels, 4 variants a row, so that it never hides a curve
    legend_rows = max(1, math.ceil(len(results) / 4))
    legend_height = 0.16 * legend_rows + 0.1
    height = 3.8 + legend_height
    fig, axes = plt.subplots(1, 3, figsize=(13, height), sharex=False)
    for i, (key, records) in enumerate(results.items()):
        for ax, stat in zip(axes, ("psd", "mass_hist", "peak_hist")):
            ax.plot([r["train_seconds"] / 60 for r in records], [r[stat] for r in records],
                    f"-{markers[i % len(markers)]}", label=key)
    for ax, stat in zip(axes, ("power spectrum", "mass histogram", "peak histogram")):
        ax.set(title=stat, xlabel="training wall-clock (min)", ylabel="median |fractional error|", yscale="log")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_results(out: Path, order: list[str] | None = None) -> list[str]:
    """The ablation as a Markdown table: one row per variant and segment, errors and training time.

    `order` lists "section/variant" keys to show first, in that order (the plan's order).
    """
    lines = ["| model | variant | steps | train min | PSD | mass | peaks | mean counts |", "|---|---|---|---|---|---|---|---|"]

    def cell(r: dict, name: str) -> str:  # a median over several sampling seeds shows their range
        spread = r.get("by_seed", {}).get(name, [])
        return f"{r[name]:.3f}" + (f" ({min(spread):.3f}-{max(spread):.3f})" if len(spread) > 1 else "")

    results = read_results(out)
    rank = {key: i for i, key in enumerate(order or [])}
    for key, records in sorted(results.items(), key=lambda item: rank.get(item[0], len(rank))):
        section, variant = key.split("/")
        for r in records:
            errors = " | ".join(cell(r, name) for name in ("psd", "mass_hist", "peak_hist"))
            lines.append(f"| {section.upper()} | {variant} | {r['step']} | {r['train_seconds'] / 60:.1f} | "
                         f"{errors} | x{r['mean_ratio']:.2f} |")
    return lines
