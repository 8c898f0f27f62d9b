"""The study's report: report.md, results.json and PNG figures in one output directory.

Scores are the released ones (1 / Frechet distance of per-cube statistics,
higher is better); each is shown next to its real-vs-real floor (mean over
half-splits of the evaluation set), the level a method can at best reach
with this many cubes. The PSD error is the median over k bins of
|fake mean / real mean - 1|; its per-bin values are in the figures, in a
table at a few k, and in full in results.json.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from nbgan_app.outputs import atomic_file
from nbgan_app.plots import save_compare_plot
from nbgan_app.stats import registry
from nbgan_app.study import figures

SECTIONS = (
    ("1. Multi-scale chain against the uni-scale baseline Mu", "section1", ("chain", "mu")),
    ("2. Architectures of the M1 up-scaler (conditional up-scaling of held-out I2)", "section2", ("m1-",)),
    ("3. Baselines: quality against time per cube", "section3", ("chain", "mu", "lognormal", "pm")),
    ("4. Conditional up-scaling of held-out cubes (thesis figs. 5.4, 5.6)", "section4", ("m2", "m1-", "m2-m1")),
)


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not np.isfinite(value):
        return "inf"
    return f"{value:.{digits}g}"


def section_rows(results: dict, keys: tuple[str, ...], chain_m1: str) -> list[dict]:
    rows = []
    for r in results["rows"]:
        for key in keys:
            match = r["name"].startswith(key) if key.endswith("-") else r["name"] == key
            # Section 4 shows only the chain's own M1 among the architectures.
            if match and (key != "m1-" or keys[0] == "m1-" or r["name"] == chain_m1) and r not in rows:
                rows.append(r)
    return rows


def score_cell(block: dict, key: str) -> str:
    floor = block.get("floor", {}).get(key, {}).get("mean")
    return f"{fmt(block[key])} ({fmt(floor)})"


def score_table(rows: list[dict]) -> list[str]:
    """Markdown: a score per registry statistic, a median error per `figures.ERROR_STATISTICS`, floors in brackets."""
    errors = [registry.get(name) for name in figures.ERROR_STATISTICS]
    headers = ["method", "side", "fake/real cubes", *(f"{spec.label} score" for spec in registry.STATISTICS),
               *(f"{spec.label} median abs error" for spec in errors), "s per cube", "training"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        s = r["scores"]
        cells = [r["label"], f"{r['side']}^3", f"{s['n_fake']}/{s['n_real']}"]
        cells += [score_cell(s[spec.name], "score") for spec in registry.STATISTICS]
        cells += [score_cell(s[spec.name], "median_abs_frac_diff") for spec in errors]
        cells += [fmt(r["seconds_per_cube"]) + f" ({r['time_note']})", ", ".join(r["training"]) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def psd_bin_table(rows: list[dict], n_columns: int = 8) -> list[str]:
    """Fractional PSD error at a few k bins, with the floor's 1-sigma spread, per side."""
    lines = []
    for side in sorted({r["side"] for r in rows}, reverse=True):
        group = [r for r in rows if r["side"] == side]
        psd = group[0]["scores"]["psd"]
        k = np.array(psd["k"], dtype=float)
        picks = np.unique(np.linspace(0, len(k) - 1, min(n_columns, len(k))).round().astype(int))
        lines += [f"Fractional PSD error (fake - real) / real at {side}^3, selected k [h/Mpc]:", "",
                  "| method | " + " | ".join(fmt(k[i], 2) for i in picks) + " |",
                  "|---|" + "---|" * len(picks)]
        for r in group:
            frac = r["scores"]["psd"]["frac_diff"]
            lines.append(f"| {r['label']} | " + " | ".join(fmt(frac[i], 2) for i in picks) + " |")
        floor = psd["floor"]["frac_diff_std"]
        lines += ["| real vs real (1 sigma) | " + " | ".join("±" + fmt(floor[i], 2) for i in picks) + " |", ""]
    return lines


def _score(block: dict) -> float:
    """A statistic's score; null in JSON means infinite (a distance of exactly 0)."""
    return np.inf if block["score"] is None else block["score"]


def verdicts(results: dict) -> list[str]:
    """Plain statements read off the numbers (no judgement beyond them)."""
    rows = {r["name"]: r["scores"] for r in results["rows"]}
    lines = []
    if "chain" in rows and "mu" in rows:
        wins = [spec.label for spec in registry.STATISTICS
                if _score(rows["chain"][spec.name]) > _score(rows["mu"][spec.name])]
        lines.append(f"- Multi-scale chain scores higher than Mu on: {', '.join(wins) or 'none'} "
                     f"(of {', '.join(spec.label for spec in registry.STATISTICS)}).")
    archs = {n: v for n, v in rows.items() if n.startswith("m1-")}
    if len(archs) > 1:
        best = [f"{spec.label} {max(archs, key=lambda n: _score(archs[n][spec.name]))[3:]}"
                for spec in registry.STATISTICS]
        lines.append(f"- Best M1 architecture by score: {', '.join(best)}.")
    for name in [n for n in ("m2", results["chain_m1"], "m2-m1") if n in rows]:
        psd = rows[name]["psd"]
        floor = psd["floor"]["median_abs_frac_diff"]["mean"]
        lines.append(f"- Conditional {name}: PSD median error {fmt(psd['median_abs_frac_diff'])} "
                     f"against a floor of {fmt(floor)}.")
    if results.get("patch"):
        cell = results["split"]["box_size"] / results["sizes"][0]
        k_patch = 2 * np.pi / (results["patch"] * cell)
        lines.append(f"- The patch side, {results['patch']} voxels = {results['patch'] * cell:g} Mpc/h, is the "
                     f"scale k = {k_patch:.3g} h/Mpc: excess power there and at its multiples in patch-made cubes "
                     "points to seams between patches.")
    for name in ("chain", "mu"):
        if name in rows and "lognormal" in rows:
            ours = rows[name]["psd"]["median_abs_frac_diff"]
            mock = rows["lognormal"]["psd"]["median_abs_frac_diff"]
            floor = rows["lognormal"]["psd"]["floor"]["median_abs_frac_diff"]["mean"]
            side = "closer to" if ours < mock else "further from"
            lines.append(f"- {name}: PSD median error {fmt(ours)} is {side} the simulations than the lognormal "
                         f"mock's {fmt(mock)} (floor {fmt(floor)}).")
    return lines


def split_lines(results: dict) -> list[str]:
    split = results["split"]
    lines = [f"- Training: {split['n_train']} cubes (the config's data minus its last {split['n_monitor']}, "
             "which training uses only as its monitor)."]
    if "train_seeds" in split:
        lines[0] += (f" The suite's simulation seeds are {split['train_seeds'][0]}..{split['train_seeds'][1]}, "
                     f"the first {split['n_train']} of them train.")
    lines += [f"- Evaluation: {split['eval']}; {split['n_eval']} cubes, never used in training.",
              f"- Floor: scores between disjoint random halves of the evaluation set "
              f"({results['study']['floor_splits']} splits; mean shown in brackets). It compares half against half, "
              "so it is noisier (more pessimistic) than a row that compares more cubes.",
              "- Conditional rows up-scale the evaluation cubes' own down-scaled versions and are scored "
              "against those cubes; unconditional rows are scored against the whole evaluation set.",
              "- The lognormal mock takes its spectrum and mean from the training cubes."]
    return lines


def budget_lines(results: dict) -> list[str]:
    study = results["study"]
    lines = [f"- Budget per model: {study['minutes_per_model']:g} min wall clock or {study['max_steps']} "
             f"generator steps, whichever ends first; Mu gets {study['uni_budget_factor']:g} budgets "
             "(the chain's three models together).",
             f"- This invocation: {results['wall_seconds'] / 60:.1f} min; training of all models (the ledger, which "
             f"a rerun reuses): {sum(t['seconds'] for t in results['training'].values()) / 60:.1f} min; on "
             f"{platform.machine()} with {results.get('cpus', '?')} CPU cores, "
             f"Keras backend {results.get('backend', '?')}.",
             f"- Command: `{results.get('command', 'nbgan evaluate')}`."]
    if results.get("load_average"):
        lines.append("- 1-minute load average at the start and end of this invocation: "
                     + " and ".join(fmt(x, 2) for x in results["load_average"]) + " (above the core count the "
                     "cores were shared, and a wall-clock budget bought fewer steps).")
    loads = any("load_average" in t for t in results["training"].values())
    lines += ["", "| model | scale | architecture | steps | seconds |" + (" load at its end |" if loads else ""),
              "|---|---|---|---|---|" + ("---|" if loads else "")]
    for name, t in results["training"].items():
        lines.append(f"| {name} | {t['scale']} | {t['architecture']} | {t['steps']} | {t['seconds']:.0f} |"
                     + (f" {fmt(t.get('load_average'), 2)} |" if loads else ""))
    if "pm" in results["split"]:
        pm = results["split"]["pm"]
        lines += ["", f"PM simulation: {pm['per_cube_s']:.2f} s per box (the first call in the process, which "
                  f"compiles where nothing was compiled before: {pm['first_s']:.1f} s)."]
    return lines


PAPER_SCALE = """\
## Running the study at the paper scale on a GPU

1. Put the 30 public 3Dcosmo cubes (`256_nbody_350Mpc_*.h5`) in `data/3dcosmo/`; `configs/paper.toml`
   reads them (256^3, 350 Mpc/h, scales 256/64/32, patch 32) and holds out its last `data.held_out`
   cubes, which are this study's evaluation set there (it needs at least 4; 8 gives a steadier floor).
2. Write a study settings file with a budget that fits the GPU time, e.g. `configs/study-paper.toml`:
   `[study]` with `minutes_per_model = 600`, `max_steps = 100000`, `n_fake = 8`, `eval_boxes = 8`
   (ignored for cube files). The three architectures and Mu multiply the budget: 5 models plus
   `uni_budget_factor` budgets for Mu.
3. On the GPU server: `KERAS_BACKEND=tensorflow nbgan evaluate --config configs/paper.toml
   --study configs/study-paper.toml --out results/paper-study`. TensorFlow uses XLA on a GPU
   (`train.jit_compile = "auto"`); `train.precision = "mixed_bfloat16"` is a further lever.
   Training runs go to `results/paper-study/runs/`; they can also be trained separately, one per GPU,
   with `nbgan train --scale 3|2|1|uni --run-dir results/paper-study/runs/<name>`, but the study then
   trains each again for its own budget unless its ledger (`runs/ledger.json`) records it.
4. A second invocation with the same settings reuses trained models (the ledger) and only regenerates and
   scores; `--overwrite` replaces report.md and the figures.
"""


def write_report(results: dict, out: Path, overwrite: bool = False) -> Path:
    """report.md, results.json and the figures into `out`; returns report.md's path."""
    out = Path(out)
    chain_m1 = results["chain_m1"]
    lines = ["# nbgan evaluation study", "",
             f"Config `{results['config']}`; budget stated below, honest numbers whatever they show. "
             "Scores: 1 / Frechet distance (higher is better), floor in brackets. Errors: median over bins of "
             "|fake mean / real mean - 1| (lower is better), floor in brackets.", "",
             "## Budget and cost", "", *budget_lines(results), "",
             "## How the cubes were split", "", *split_lines(results), "",
             "## What the numbers say", "", *verdicts(results), ""]
    for title, tag, keys in SECTIONS:
        rows = section_rows(results, keys, chain_m1)
        if not rows:
            continue
        figures.save(figures.psd_error_figure(rows, title), out / f"{tag}_psd_error.png")
        lines += [f"## {title}", "", *score_table(rows), "", *psd_bin_table(rows),
                  f"![fractional PSD error]({tag}_psd_error.png)", ""]
        if tag == "section3":
            figures.save(figures.quality_time_figure(rows), out / "quality_vs_time.png")
            lines += ["![quality against time per cube](quality_vs_time.png)", ""]
    lines += ["## Statistics of each method", ""]
    for r in results["rows"]:
        save_compare_plot(r["scores"], out / f"compare_{r['name']}.png", overwrite=True)
        lines.append(f"- {r['label']}: ![{r['name']}](compare_{r['name']}.png)")
    lines += ["", PAPER_SCALE]
    with atomic_file(out / "results.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(results, indent=1, allow_nan=False, default=float) + "\n")
    with atomic_file(out / "report.md", overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out / "report.md"
