"""The main job end to end on the embedded default (`nbgan demo`).

By default the demo uses the shipped preset (`checkpoints/presets/demo`, see
`nbgan presets`), so a new user sees the product work in a few minutes:
1. test boxes: simulate fresh PM boxes that no model trained, monitored or
   was tuned on (`study.quality.test_boxes`; cached after the first run);
2. sample cubes through the preset's chain M3 -> M2 -> M1 into samples.h5;
3. up-scale the test boxes' own coarser levels with M2 -> M1 and M1 (the
   conditional evaluation);
4. score every set against the test boxes beside the real-vs-real floor and a
   lognormal mock with the training suite's spectrum (shipped with the preset);
5. write scores.json, statistics.png and report.md into `<demo.out>/preset`.

Where the preset ships Mu, the uni-scale model (patch by patch from
nothing), its cubes are a row of the table too, for the comparison.

With `--train` it first retrains the chain and Mu from scratch on the
config's suite (simulated first if missing) for `demo.steps_m*` generator
steps per scale into `<demo.out>/m3`, `m2`, `m1`, `mu` (an interrupted run
resumes), chooses M3's latent scale among `demo.m3_latent_scales` on
validation boxes as the preset's was chosen (`nbgan latent-scale`), then
scores them the same way into `<demo.out>`, with the preset's scores beside
them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from nbgan_app import scales
from nbgan_app.config import Config
from nbgan_app.errors import InputError

PRESET = "demo"
SCALES = scales.CHAIN + (scales.MU,)  # the chain, and Mu, the uni-scale model it is compared with
MOCK_SPECTRUM = "mock_spectrum.json"  # in a preset: the training suite's spectrum, for the mock
LATENT_SEEDS = (1, 2, 3, 4, 5, 6)  # sampling seeds a latent scale is chosen over (medians)


def _stage(console, text: str) -> None:
    console.rule(f"[bold]{text}")


def _train_all(config: Config, out: Path, console) -> dict[str, Path]:
    from nbgan_app.training import train

    runs = {}
    for scale in SCALES:
        steps = config.demo.steps_of(scale)
        runs[scale.section] = out / scale.section
        _stage(console, f"train {scale.title} ({steps} steps) -> {runs[scale.section]}")
        started = time.time()
        state = train(config, scale.name, runs[scale.section], steps=steps)
        console.print(f"{scale.title}: {state['state']} at step {state['step']} ({time.time() - started:.0f} s)")
    return runs


def _choose_m3_latent_scale(config: Config, runs: dict[str, Path], n: int, console) -> None:
    """Choose the trained M3's latent scale among `demo.m3_latent_scales` on `n` validation boxes, as the
    preset's was chosen (`nbgan latent-scale`); kept if already chosen for the same generator (a rerun)."""
    from nbgan_app.latent_scale import current_choice, write_choice
    from nbgan_app.study.latent import choose_scale

    values = list(config.demo.m3_latent_scales)
    m3 = runs[scales.M3.section]
    step, earlier = current_choice(m3)
    if earlier is not None:
        console.print(f"M3: latent scale {earlier['latent_scale']:g}, chosen earlier for step {step}")
        return
    _stage(console, f"choose M3's latent scale among {', '.join(f'{v:g}' for v in values)} on validation boxes")
    chain = [runs[s.section] for s in scales.CHAIN]
    record = choose_scale(chain, scales.M3.name, values, list(LATENT_SEEDS), n, n, log=console.print)
    write_choice(m3, {**record, "chain": ",".join(str(path) for path in chain)})
    console.print(f"M3: latent scale {record['latent_scale']:g} (step {step})")


def _sample(runs: dict[str, Path], n: int, path: Path, seed: int) -> np.ndarray:
    from nbgan_app.cubes import load_cubes
    from nbgan_app.sampling import sample_chain
    from nbgan_app.sampling.progress import ProgressLine

    with ProgressLine() as progress:
        result = sample_chain([runs[s.section] for s in scales.CHAIN], n, path, seed=seed, overwrite=True,
                              progress=progress)
    print(result.summary())
    return load_cubes([path], None)[0]


def save_mock_spectrum(train_counts: np.ndarray, box_size: float, path: Path) -> None:
    """The lognormal mock's target measured on the training suite, as JSON (shipped with a preset)."""
    from nbgan_app.outputs import atomic_file
    from nbgan_app.study.mock import measure_spectrum

    target = measure_spectrum(train_counts, box_size)
    table = {"k": target.k.tolist(), "power": target.power.tolist(), "mean_count": target.mean_count,
             "grid": target.grid, "box_size": target.box_size, "ndim": target.ndim, "n_cubes": len(train_counts)}
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(table))


def load_mock_spectrum(path: Path):
    from nbgan_app.study.mock import MockSpectrum

    table = json.loads(Path(path).read_text())
    return MockSpectrum(np.asarray(table["k"]), np.asarray(table["power"]), table["mean_count"], table["grid"],
                        table["box_size"], table["ndim"])


def evaluate_chain(config: Config, runs: dict[str, Path], mock_target, n: int, out: Path, console,
                   extra: dict[str, np.ndarray] | None = None, seed: int = 1) -> dict:
    """Sample, up-scale and score against fresh test boxes; write scores.json, report.md, statistics.png."""
    from nbgan_app.study import quality
    from nbgan_app.study.mock import lognormal_mocks

    started = time.time()
    _stage(console, f"test boxes: {n} fresh PM boxes, never trained on")
    test, box_size, described = quality.test_boxes(config, n, progress=True)
    _stage(console, f"sample {n} cubes through M3 -> M2 -> M1, and up-scale the test boxes' coarse levels")
    chain = _sample(runs, n, out / "samples.h5", seed)
    cubes = quality.model_rows(runs, test, n, seed=seed, log=console.print, chain=chain)
    cubes["lognormal mock"] = lognormal_mocks(mock_target, n, seed=seed)
    cubes.update(extra or {})
    _stage(console, "scores against the test boxes")
    patch_mpc = config.pyramid.patch * box_size / config.pyramid.sizes[0]
    rows = {name: quality.score_row(test, fake, box_size, patch_mpc=patch_mpc) for name, fake in cubes.items()}
    print(quality.format_table(rows, len(test)))
    result = {"test": described, "box_size": box_size, "n_fake": n, "rows": rows,
              "runs": {name: str(path) for name, path in runs.items()}, "seconds": time.time() - started}
    from nbgan_app.stats.report import write_json

    write_json(out / "scores.json", result, overwrite=True)
    _plot(test, chain, box_size, out / "statistics.png", console)
    return result


def run_demo(config: Config, console=None, train: bool = False, n: int = 32, preset: str = PRESET,
             presets_root: Path | None = None) -> dict:
    """The preset's chain (or, with `train`, one trained now) scored against fresh test boxes."""
    from rich.console import Console

    from nbgan_app.outputs import ensure_writable_dir
    from nbgan_app.presets import PRESETS, get_preset

    console = console or Console(stderr=True)
    started = time.time()
    shipped = get_preset(preset, presets_root or PRESETS)
    if not train:
        if shipped is None:
            raise InputError(f"no preset {preset!r} in checkpoints/presets: run `nbgan demo --train`")
        from nbgan_app.run_setup import read_run

        out = ensure_writable_dir(config.resolve(config.demo.out) / "preset", parents=True)
        # every chain run is required (`Preset.run` names a missing one); Mu only where the preset ships one
        runs = {s.section: shipped.run(s.section) for s in SCALES
                if s in scales.CHAIN or s.section in shipped.manifest["runs"]}
        mock = shipped.path / MOCK_SPECTRUM
        if not mock.is_file():
            raise InputError(f"preset {preset!r} has no {MOCK_SPECTRUM} (the lognormal mock's target)")
        # the test boxes and the pyramid are the preset's, whatever config the output place came from
        _, config = read_run(runs["m1"])
        result = evaluate_chain(config, runs, load_mock_spectrum(mock), n, out, console)
    else:
        from nbgan_app.dataset import load_dataset, split_dataset
        from nbgan_app.study.mock import measure_spectrum

        out = ensure_writable_dir(config.resolve(config.demo.out), parents=True)
        _stage(console, "training suite")
        counts, box_size = load_dataset(config, progress=True)
        train_counts, _ = split_dataset(config, counts)
        runs = _train_all(config, out, console)
        if config.demo.m3_latent_scales:
            _choose_m3_latent_scale(config, runs, n, console)
        extra = {"PM training suite (other boxes)": train_counts[:n]}
        result = evaluate_chain(config, runs, measure_spectrum(train_counts, box_size), n, out, console, extra)
    result["total_seconds"] = time.time() - started
    write_report(out / "report.md", config, result, shipped.manifest if (train and shipped) else None)
    console.print(f"done in {result['total_seconds']:.0f} s: {out / 'report.md'}")
    return result


def _plot(test: np.ndarray, chain: np.ndarray, box_size: float, path: Path, console) -> None:
    try:
        from nbgan_app.plots import save_compare_plot
        from nbgan_app.stats.scores import compare

        save_compare_plot(compare(test, chain, box_size, psd_bins="linear", floor=True), path, overwrite=True)
        console.print(f"plot: {path}")
    except Exception as exc:  # noqa: BLE001 - matplotlib is an optional extra
        console.print(f"no plot ({exc})")


def write_report(path: Path, config: Config, result: dict, preset_manifest: dict | None) -> None:
    from nbgan_app.outputs import atomic_file
    from nbgan_app.study.quality import markdown_table

    rows = result["rows"]
    lines = [
        "# nbgan demo report", "",
        f"Config `{Path(config.source).name}`; runs {', '.join(result['runs'].values())}. "
        f"Test set: {result['test']}; {result['n_fake']} cubes per row; box {result['box_size']:g} Mpc/h. "
        f"Total time {result['total_seconds'] / 60:.1f} min.", "",
        *markdown_table(rows, result["n_fake"]), "",
        "Seams (power at the patch wavenumbers beyond the neighbouring bins, in floor spreads; below 2 is "
        "noise): " + ", ".join(f"{name} {row['seam_excess']:.1f}" for name, row in rows.items()
                               if "seam_excess" in row), "",
    ]
    if preset_manifest is not None:
        lines += ["The shipped preset, as recorded in its manifest:", ""]
        lines += [f"- {row['name']}: PSD {row['psd']:.3f}, mass {row['mass_hist']:.3f}, peaks {row['peak_hist']:.3f}"
                  for row in preset_manifest.get("scores", {}).get("rows", [])]
        lines.append("")
    lines += ["![statistics](statistics.png)", ""]
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
