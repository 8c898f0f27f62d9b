"""Contracts that the library and the dashboard (or two commands) must read the same way.

Box-size precedence (training and sampling), the project root a run's relative
paths resolve against (sampling and the dashboard), the run directory's file
and loss names (the trainer and the dashboard), and the fewest real cubes the
real-vs-real floor needs (the scorer and the dashboard).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from nbgan_app import rundir
from nbgan_app.config import load_config, parse_config, to_dict
from nbgan_app.cubes import write_cube
from tui_fixtures import make_run

ROOT = Path(__file__).resolve().parents[1]


def _dir_config(data: Path, box_size: float | None):
    table = to_dict(load_config(ROOT / "configs" / "tiny.toml"))
    table["data"] = {"dir": str(data), "held_out": 1, **({"box_size": box_size} if box_size else {})}
    return parse_config(table)


def test_box_size_precedence_is_the_same_for_training_and_sampling(tmp_path, tiny_config, tiny_cubes):
    from nbgan_app.dataset import load_dataset
    from nbgan_app.sampling.api import box_size_of
    from nbgan_app.sampling.chain import RunInfo

    rng = np.random.default_rng(0)
    for i in range(2):
        write_cube(tmp_path / f"cube_{i}.h5", rng.poisson(2.0, (16, 16, 16)), box_size=50.0)
    # a directory: the files' attribute, unless data.box_size overrides it
    assert load_dataset(_dir_config(tmp_path, None), progress=False)[1] == 50.0
    stated = _dir_config(tmp_path, 70.0)
    assert load_dataset(stated, progress=False)[1] == 70.0
    assert box_size_of(RunInfo(tmp_path, "1", stated), 16) == 70.0
    # sampling scales the box with the side: 4 voxels at M3's resolution are the whole box
    assert box_size_of(RunInfo(tmp_path, "3", stated), 4) == 70.0
    assert box_size_of(RunInfo(tmp_path, "1", stated), 32) == 140.0
    # a simulation: its own box size, even with a stray data.box_size beside it
    stray = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data, box_size=999.0))
    assert load_dataset(stray, progress=False)[1] == 64.0
    assert box_size_of(RunInfo(tmp_path, "1", stray), 16) == 64.0


def test_sampling_and_dashboard_resolve_a_run_against_the_same_root(tmp_path):
    from nbgan_app.sampling.runs import load_run
    from tui.real_data import run_config

    (tmp_path / "configs").mkdir()
    # no recorded root: the root of the recorded config file, as load_config would find it
    run = make_run(tmp_path / "runs", "m1", scale="1", data_dir="data",
                   config_path=str(tmp_path / "configs" / "tiny.toml"))
    assert load_run(run).config.resolve("data") == run_config(run).resolve("data") == tmp_path / "data"
    # a recorded root wins (the run was made from a config with that root)
    saved = rundir.read_json(run / rundir.CONFIG)
    saved["run"]["root"] = str(tmp_path / "elsewhere")
    rundir.write_json_atomic(run / rundir.CONFIG, saved)
    assert load_run(run).config.root == run_config(run).root == str(tmp_path / "elsewhere")


@pytest.mark.backends
def test_the_dashboard_reads_what_the_trainer_writes(tiny_config, tiny_cubes, tmp_path):
    from nbgan_app.training import train
    from tui.runs import last_scores
    from tui.samples import read_latest_stats
    from tui.widgets.metrics_plot import LABELS, LOSSES

    run = tmp_path / "run"
    train(tiny_config, "3", run, steps=2, progress=False)
    records = rundir.read_metrics(run)
    assert LOSSES is rundir.LOSSES and set(LABELS) == set(rundir.LOSSES)
    assert all(set(r) >= set(rundir.LOSSES) for r in records)
    # statistic scores are what is left of a record once step, time and the losses are set aside
    assert last_scores(records) == {}  # one held-out cube: nothing to score against
    assert last_scores(records[:-1] + [{**records[-1], "psd_score": 0.5}]) == {"psd_score": 0.5}
    assert (run / rundir.SAMPLES / rundir.LATEST_SAMPLES).is_file()
    stats = read_latest_stats(run)
    assert isinstance(stats, dict) and stats["fake"]["n_cubes"] == tiny_config.train.eval_samples


@pytest.mark.parametrize("n", [3, 4])
def test_the_dashboard_and_the_scorer_agree_on_when_there_is_a_floor(tmp_path, n):
    from nbgan_app.stats.scores import FLOOR_MIN, compare
    from tui.real_data import RealCubes

    assert FLOOR_MIN == 4
    files = [tmp_path / f"c{i}.h5" for i in range(n)]
    chosen, note = RealCubes(files, held_out=n, box_size=64.0, side=8).for_scores()
    assert chosen == files
    rng = np.random.default_rng(1)
    scores = compare(rng.poisson(3.0, (n, 8, 8, 8)), rng.poisson(3.0, (2, 8, 8, 8)), 64.0, floor=None)
    has_floor = "floor" in scores["psd"]
    assert has_floor == (n >= FLOOR_MIN) == ("no real-vs-real floor" not in note)


def test_a_preset_runs_data_paths_resolve_against_this_checkout(tmp_path, monkeypatch):
    """Shipped runs record the trainer's project root; in a preset they resolve against this checkout."""
    import json

    from nbgan_app import presets
    from nbgan_app.config import load_config, to_dict
    from nbgan_app.run_setup import read_run

    config = load_config(presets.PROJECT_ROOT / "configs" / "tiny.toml")
    run = tmp_path / "presets" / "p" / "m3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": to_dict(config),
                                                 "run": {"scale": "3", "root": "/elsewhere/nbgan"}}))
    monkeypatch.setattr(presets, "PRESETS", tmp_path / "presets")
    _, resolved = read_run(run)
    assert resolved.resolve(config.data.simulation.cache) == presets.PROJECT_ROOT / "data" / "tiny-sim"
    outside = tmp_path / "m3"
    run.rename(outside)
    _, resolved = read_run(outside)
    assert str(resolved.resolve(config.data.simulation.cache)).startswith("/elsewhere/nbgan")
