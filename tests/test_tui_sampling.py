"""Pilot tests of chained sampling from the dashboard: the sampling job, its scores, the presets."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nbgan_app import rundir
from nbgan_app.cubes import write_cube
from tui_fixtures import make_run

textual = pytest.importorskip("textual")

from tui import processes  # noqa: E402
from tui.chain_sampling import ChainSampling  # noqa: E402
from tui.widgets.stat_plot import StatPlot  # noqa: E402
from tui_pilot import app_for, run_list, wait_for  # noqa: E402


FAKE_NBGAN = """
import os, sys
import numpy as np
from nbgan_app.cubes import write_cube
args = sys.argv[1:]
print("argv", *args, flush=True)
if args[0] == "sample" and not os.environ.get("FAKE_SAMPLE_FAILS"):
    print("wave 1/2 level 2", "wave 2/2 level 1", sep="\\n", flush=True)
    cubes = np.random.default_rng(1).poisson(3.0, (2, 16, 16, 16))
    write_cube(args[args.index("--out") + 1], cubes, 64.0, complete=True)
    sys.exit(0)
print("boom [red]", flush=True)
sys.exit(3)
"""


def chain_job(tmp_path: Path, monkeypatch, n_real: int, held_out: int) -> ChainSampling:
    """A ChainSampling through a stand-in `nbgan` (fast, no models), M1's config naming `n_real` cubes."""
    script = tmp_path / "fake_nbgan.py"
    script.write_text(FAKE_NBGAN)
    monkeypatch.setattr(processes, "nbgan_command", lambda: [sys.executable, str(script)])
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_real):
        write_cube(data / f"cube_{i}.h5", rng.poisson(3.0, (16, 16, 16)), 64.0)
    m1 = make_run(tmp_path / "runs", "m1", scale="1", data_dir=str(data))
    config = rundir.read_json(m1 / rundir.CONFIG)
    config["config"]["data"]["held_out"] = held_out
    rundir.write_json_atomic(m1 / rundir.CONFIG, config)
    return ChainSampling([m1, m1, m1], 2, None, "wavefront", tmp_path / "out" / "chain.h5")


def run_to_end(job: ChainSampling, timeout: float = 60.0) -> ChainSampling:
    deadline = time.monotonic() + timeout
    while not job.done and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.1)
    assert job.done, job.message
    return job


def test_chain_sampling_scores_in_process_when_too_few_real_cubes_for_a_floor(tmp_path, monkeypatch):
    job = run_to_end(chain_job(tmp_path, monkeypatch, n_real=2, held_out=1))
    assert not job.failed and job.compare is None, job.message
    assert job.progress() == (2, 2, 1)
    assert job.stats["real"]["n_cubes"] == 2 and job.stats["fake"]["n_cubes"] == 2
    assert "floor" not in job.stats["scores"]["psd"]
    assert job.message.startswith(f"done: {job.sample.out}\n")
    assert "all 2 cubes of the data" in job.message and "needs >= 4 real cubes" in job.message


def test_chain_sampling_hands_enough_real_cubes_to_nbgan_compare_and_reports_its_failure(tmp_path, monkeypatch):
    job = run_to_end(chain_job(tmp_path, monkeypatch, n_real=5, held_out=4))
    assert job.failed and job.stats is None
    assert job.message.startswith("nbgan compare failed (exit 3)\n")
    words = job.compare.log.read_text().split()
    real = words[words.index("--real") + 1: words.index("--fake")]
    assert [Path(p).name for p in real] == [f"cube_{i}.h5" for i in range(1, 5)]  # the held-out ones
    assert words[words.index("--box-size") + 1] == "64.0"


def test_chain_sampling_reports_a_failed_sampler_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SAMPLE_FAILS", "1")
    job = run_to_end(chain_job(tmp_path, monkeypatch, n_real=2, held_out=1))
    assert job.failed and job.stats is None and job.compare is None
    assert job.message.startswith("sampling failed: exit code 3\n")
    assert "boom [red]" in job.message



def sampling_runs(tmp_path: Path, tiny_runs) -> Path:
    """A runs directory linking the session's tiny trained runs (M3, M2, M1, uni)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for scale, path in tiny_runs.items():
        (runs / f"m{scale}").symlink_to(path, target_is_directory=True)
    return runs


async def sample_from_screen(app, pilot, chain: dict[str, Path] | None = None):
    """Open the sampling screen, pick the runs of `chain` ({"m3": path, ...}; default: the first run of
    each scale), start, wait for the end."""
    assert await wait_for(pilot, lambda: run_list(app).row_count >= 3)
    await pilot.press("c")
    await pilot.pause(0.3)
    screen = app.screen
    for section, run in (chain or {}).items():
        screen.query_one(f"#{section}").value = str(run)
    await pilot.press("ctrl+s")
    assert await wait_for(pilot, lambda: screen.job is not None and screen.job.done, timeout=90), \
        screen.job and screen.job.sample.log_tail(10)
    return screen


@pytest.mark.slow
def test_chained_sampling_of_real_runs_shows_statistics_without_floor(tmp_path, tiny_runs):
    import h5py

    runs = sampling_runs(tmp_path, tiny_runs)

    async def go():
        app = app_for(runs)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await sample_from_screen(app, pilot)
            assert isinstance(screen.job.stats, dict), screen.job.message
            with h5py.File(screen.job.sample.out, "r") as f:
                assert bool(f.attrs["complete"]) and f["data"].shape == (2, 16, 16, 16)
            assert len(screen.query_one("#stat-psd", StatPlot).frac) > 0
            assert screen.query_one("#wave").render().plain.strip() == "wave 10/10 level 1"
            message = str(screen.query_one("#stats-message").render())
            assert "real n=3" in message and "psd" in message and "no floor" in message
            assert "needs >= 4 real cubes" in str(screen.query_one("#message").render())

    asyncio.run(go())


@pytest.mark.slow
def test_chained_sampling_scores_with_the_floor_through_nbgan_compare(tmp_path, tiny_runs, tiny_cubes):
    runs = sampling_runs(tmp_path, tiny_runs)
    data = tmp_path / "data"
    data.mkdir()
    for i, cube in enumerate([*tiny_cubes, *(c.transpose(1, 2, 0) for c in tiny_cubes)]):
        write_cube(data / f"cube_{i}.h5", cube, 64.0)
    chain = {}
    for scale in ("3", "2", "1"):  # copies whose config names 6 cubes, 4 held out (a chain agrees on its data)
        chain[f"m{scale}"] = run = runs / f"m{scale}-held-out-4"
        shutil.copytree(tiny_runs[scale], run)
        config = rundir.read_json(run / rundir.CONFIG)
        config["config"]["data"] = {"dir": str(data), "box_size": 64.0, "held_out": 4}
        rundir.write_json_atomic(run / rundir.CONFIG, config)

    async def go():
        app = app_for(runs)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await sample_from_screen(app, pilot, chain)
            assert isinstance(screen.job.stats, dict), screen.job.message
            assert screen.job.compare is not None and screen.job.compare.out.exists()
            message = str(screen.query_one("#stats-message").render())
            assert "real n=4" in message and "(floor " in message
            assert "the 4 held-out cubes" in str(screen.query_one("#message").render())

    asyncio.run(go())


def make_preset(root: Path, runs: dict[str, Path]) -> Path:
    """root/tiny with m3, m2, m1 linking `runs` ({"3": path, ...}) and its manifest.json."""
    from nbgan_app import presets

    preset = root / "tiny"
    preset.mkdir(parents=True)
    for scale in ("3", "2", "1"):
        (preset / f"m{scale}").symlink_to(runs[scale], target_is_directory=True)
    presets.write_manifest(preset, description="tiny chain for tests", config="configs/tiny.toml",
                           command="pytest", chain=["m3", "m2", "m1"], scores={})
    return preset


async def open_sampling(app, pilot, presets_root: Path):
    from tui.screens.sampling import SamplingScreen

    await app.push_screen(SamplingScreen([], presets_root.parent / "_sampling", presets_root))
    await pilot.pause(0.3)
    return app.screen


async def choose_preset(pilot, screen) -> list[str]:
    """Pick the first preset from the opened #preset list; returns the list's entries."""
    from textual.widgets import OptionList, Select

    select = screen.query_one("#preset", Select)
    select.focus()
    await pilot.press("enter")
    entries = [str(o.prompt) for o in select.query_one(OptionList).options]
    await pilot.press("down", "enter")
    await pilot.pause(0.2)
    return entries


def test_sampling_screen_offers_presets_and_is_unchanged_without(tmp_path):
    from textual.widgets import Select

    runs = tmp_path / "runs"
    runs.mkdir()
    fake = {scale: make_run(tmp_path / "trained", f"tiny-{scale}", scale=scale) for scale in ("3", "2", "1")}
    preset = make_preset(tmp_path / "presets", fake)

    async def go():
        app = app_for(runs)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await open_sampling(app, pilot, tmp_path / "no-presets")
            assert not screen.query("#preset")
            assert str(screen.query_one("#message").render()) == "pick three runs, then Start (ctrl+s)"
            screen.action_back()
            await pilot.pause(0.2)

            screen = await open_sampling(app, pilot, tmp_path / "presets")
            assert "tiny: tiny chain for tests" in await choose_preset(pilot, screen)
            assert screen.chosen_chain() == [str(preset / m) for m in ("m3", "m2", "m1")]
            assert "preset tiny: m3 (0 steps) -> m2 (0 steps) -> m1 (0 steps)" in str(
                screen.query_one("#message").render())
            screen.query_one("#m1", Select).value = str(preset / "m2")  # hand-picked: no longer the preset
            await pilot.pause(0.2)
            assert screen.query_one("#preset", Select).is_blank()

    asyncio.run(go())


@pytest.mark.slow
def test_sampling_a_preset_chosen_on_the_screen_runs_nbgan_sample(tmp_path, tiny_runs):
    import h5py

    from tui.samples import is_complete

    preset = make_preset(tmp_path / "presets", tiny_runs)
    (tmp_path / "runs").mkdir()

    async def go():
        app = app_for(tmp_path / "runs")
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await open_sampling(app, pilot, tmp_path / "presets")
            await choose_preset(pilot, screen)
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: screen.job is not None and screen.job.done, timeout=90), \
                screen.job and screen.job.sample.log_tail(10)
            assert not screen.job.failed, screen.job.message
            assert screen.job.m1 == preset / "m1"
            assert is_complete(screen.job.sample.out)
            with h5py.File(screen.job.sample.out, "r") as f:
                assert f["data"].shape == (2, 16, 16, 16)
            assert isinstance(screen.job.stats, dict), screen.job.message

    asyncio.run(go())


