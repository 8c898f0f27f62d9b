"""The main job end to end on the embedded default (`nbgan demo`).

Stages, each reusing what an earlier invocation finished:
1. data: simulate the demo suite with jaxpm (or reuse the cache), hold out the
   last `data.held_out` cubes;
2. train M3, M2 and M1 for `demo.steps_m*` generator steps each (a finished run
   is reused, an interrupted one resumes);
3. sample `demo.samples` full cubes through the chain M3 -> M2 -> M1;
4. score them against the held-out cubes, with the real-vs-real floor, and
   against a lognormal mock with the training cubes' spectrum where available;
5. write statistics.png, scores.json and report.md into `demo.out`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from nbgan_app import scales
from nbgan_app.config import Config


def _stage(console, text: str) -> None:
    console.rule(f"[bold]{text}")


def _data(config: Config, console):
    from nbgan_app.dataset import load_dataset, split_dataset

    started = time.time()
    counts, box_size = load_dataset(config, progress=True)
    train, held_out = split_dataset(config, counts)
    ratio = float(np.mean([c.var() / c.mean() for c in counts]))
    console.print(f"{len(counts)} cubes of {counts.shape[1]}^3 in a {box_size:g} Mpc/h box "
                  f"({time.time() - started:.1f} s); count variance/mean {ratio:.1f} (Poisson: 1); "
                  f"{len(train)} for training, {len(held_out)} held out")
    return train, held_out, box_size


def _train_all(config: Config, out: Path, console) -> dict[str, Path]:
    from nbgan_app.training import train

    runs = {}
    for scale in scales.CHAIN:
        steps = config.demo.steps_of(scale)
        runs[scale.name] = out / scale.section
        _stage(console, f"train {scale.title} ({steps} steps) -> {runs[scale.name]}")
        started = time.time()
        state = train(config, scale.name, runs[scale.name], steps=steps)
        console.print(f"{scale.title}: {state['state']} at step {state['step']} ({time.time() - started:.0f} s)")
    return runs


def _sample(config: Config, runs: dict[str, Path], out: Path, console) -> Path:
    import h5py

    from nbgan_app.sampling import sample_chain
    from nbgan_app.sampling.progress import WaveReporter

    path = out / "samples.h5"
    resume = path.exists()
    if resume:
        with h5py.File(path, "r") as f:
            if bool(f.attrs.get("complete", False)):
                console.print(f"reusing {path}")
                return path
    with WaveReporter() as progress:
        result = sample_chain([runs[s.name] for s in scales.CHAIN], config.demo.samples, path, seed=1,
                              resume=resume, progress=progress)
    print(result.summary())
    return path


def _lognormal(train: np.ndarray, n: int, box_size: float):
    """A lognormal mock of the training cubes, if the study module provides one."""
    try:
        from nbgan_app.study.mock import lognormal_mock
    except ImportError:
        return None
    return lognormal_mock(train, n, box_size, seed=0)


def run_demo(config: Config, console=None) -> dict:
    """Run every stage; returns the comparison result of the samples against the held-out cubes."""
    from rich.console import Console

    from nbgan_app.cubes import load_cubes
    from nbgan_app.outputs import ensure_writable_dir
    from nbgan_app.stats.report import score_table, write_json
    from nbgan_app.stats.scores import compare

    console = console or Console(stderr=True)
    out = ensure_writable_dir(config.resolve(config.demo.out))
    started = time.time()
    _stage(console, "data")
    train, held_out, box_size = _data(config, console)
    runs = _train_all(config, out, console)
    _stage(console, f"sample {config.demo.samples} cubes through M3 -> M2 -> M1")
    fake, _ = load_cubes([_sample(config, runs, out, console)], box_size)
    _stage(console, "scores against the held-out cubes")
    result = compare(held_out, fake, box_size, floor=True)
    write_json(out / "scores.json", result, overwrite=True)
    print(score_table(result))
    mock = _lognormal(train, len(fake), box_size)
    mock_result = None
    if mock is not None:
        mock_result = compare(held_out, mock, box_size, floor=False)
        print("lognormal mock (the cheap alternative):")
        print(score_table(mock_result))
    _plot(result, out / "statistics.png", console)
    write_report(out / "report.md", config, result, mock_result, runs, time.time() - started)
    console.print(f"done in {time.time() - started:.0f} s: {out / 'report.md'}")
    return result


def _plot(result: dict, path: Path, console) -> None:
    try:
        from nbgan_app.plots import save_compare_plot

        save_compare_plot(result, path, overwrite=True)
        console.print(f"plot: {path}")
    except Exception as exc:  # noqa: BLE001 - matplotlib is an optional extra
        console.print(f"no plot ({exc})")


def write_report(path: Path, config: Config, result: dict, mock: dict | None, runs: dict, seconds: float) -> None:
    from nbgan_app.outputs import atomic_file
    from nbgan_app.stats.report import markdown_score_table

    lines = [
        "# nbgan demo report", "",
        f"Config: `{config.source}`. Total time {seconds / 60:.1f} min. "
        f"Cubes: {result['n_real']} held-out real, {result['n_fake']} generated through M3 -> M2 -> M1 "
        f"(runs: {', '.join(str(p.name) for p in runs.values())}); box {result['box_size']:g} Mpc/h.", "",
        "Scores: released 1/Frechet score (higher is better) and median |fractional difference| of the mean "
        "statistic; the floor is the same between random halves of the held-out cubes.", "",
        *markdown_score_table(result),
    ]
    if mock is not None:
        lines += ["", "Lognormal mock with the training cubes' power spectrum:", "", *markdown_score_table(mock)]
    lines += ["", "![statistics](statistics.png)", ""]
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
