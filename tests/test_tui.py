"""Pilot tests of the dashboard: widget state after keys, with fixture run directories."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nbgan_app import devices, rundir
from nbgan_app.cubes import write_cube
from tui_fixtures import add_best, add_samples, make_run, metric, sleeper

textual = pytest.importorskip("textual")

from tui import processes  # noqa: E402
from tui.app import create_app  # noqa: E402
from tui.chain_sampling import ChainSampling  # noqa: E402
from tui.screens.quit import QuitScreen  # noqa: E402
from tui.widgets.heat_map import HeatMap  # noqa: E402
from tui.widgets.metrics_plot import MetricsPlot  # noqa: E402
from tui.widgets.panes import PANES, RunPane, RunUpdate  # noqa: E402
from tui.runs import RunWatcher, format_best, read_summary  # noqa: E402
from tui.widgets.run_list import COLUMNS, RunList  # noqa: E402
from tui.widgets.slider import Slider  # noqa: E402
from tui.widgets.stat_plot import StatPlot  # noqa: E402
from tui.widgets.training_view import TrainingView  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = (80, 24)


def app_for(runs: Path, configs: Path | None = None):
    return create_app(runs, configs or ROOT / "configs", refresh_s=0.1)


async def wait_for(pilot, condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await pilot.pause(0.1)
    return condition()


def run_list(app) -> RunList:
    return app.screen.query_one(RunList)


def test_nbgan_app_never_imports_textual():
    code = (
        "import importlib, pkgutil, sys, nbgan_app\n"
        "bad = []\n"
        "for m in pkgutil.walk_packages(nbgan_app.__path__, 'nbgan_app.'):\n"
        "    if m.name.endswith('__main__'):\n        continue\n"
        "    try:\n        importlib.import_module(m.name)\n"
        "    except Exception as e:\n        bad.append(m.name)\n"
        "print('IMPORTED', len(sys.modules), 'FAILED', bad)\n"
        "sys.exit(3 if any(k == 'textual' or k.startswith(('textual.', 'tui')) for k in sys.modules) else 0)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "IMPORTED" in done.stdout


def test_app_mounts_and_lists_runs(tmp_path):
    add_best(make_run(tmp_path, "m3-a", scale="3", state="finished"), 1500, 0.1774, 0.987)
    make_run(tmp_path, "m2-b", scale="2", state="stopped", steps=3)

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            table = run_list(app)
            assert await wait_for(pilot, lambda: table.row_count == 2)
            assert set(table.summaries) == {"m3-a", "m2-b"}
            assert table.summaries["m3-a"].state == "finished" and table.summaries["m3-a"].scale == "3"
            assert table.summaries["m2-b"].step == 2 and table.summaries["m2-b"].config == "tiny.toml"
            assert [str(c) for c in table.get_row("m2-b")][:2] == ["m2-b", "2"]
            column = COLUMNS.index("best")
            assert COLUMNS[column - 1:column + 2] == ("step", "best", "state")
            assert str(table.get_row("m3-a")[column]) == "1500 · 0.177 · x0.99"
            assert str(table.get_row("m2-b")[column]) == "-"  # no best/

    asyncio.run(go())


def test_corrupt_and_vanishing_runs_show_error_rows(tmp_path):
    good = make_run(tmp_path, "good")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"config": {')
    torn = make_run(tmp_path, "torn")
    with open(torn / rundir.METRICS, "a") as f:
        f.write('{"step": 99, "critic_lo')  # a writer killed mid-line
    make_run(tmp_path, "dead", state="running", pid=2**22 + 12345)

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            table = run_list(app)
            assert await wait_for(pilot, lambda: table.row_count == 4)
            assert table.summaries["broken"].state == "error"
            assert "config.json" in table.summaries["broken"].error
            assert table.summaries["torn"].step == 4  # the torn record is not counted
            assert table.summaries["dead"].state == "failed"
            assert "died" in str(table.get_row("dead")[-1])
            shutil.rmtree(good)  # deleted while shown
            assert await wait_for(pilot, lambda: "good" not in table.summaries)
            assert app.is_running

    asyncio.run(go())


def test_format_best_shows_step_error_and_mean_count_ratio_when_recorded():
    assert format_best({"step": 1500, "monitor_error": 0.1774, "eval_samples": 8, "mean_count_ratio": 0.987}) \
        == "1500 · 0.177 · x0.99"
    assert format_best({"step": 1500, "monitor_error": 0.1774, "eval_samples": 8}) == "1500 · 0.177"  # an older best
    assert format_best({"step": 1500, "monitor_error": 0.1774, "mean_count_ratio": None}) == "1500 · 0.177"
    assert format_best({}) == "-"


def test_summary_shows_the_kept_best_and_a_new_one_once_written(tmp_path):
    run = make_run(tmp_path, "done", state="finished")
    bare = make_run(tmp_path, "bare", state="finished")
    old = add_best(run, 1500, 0.177, 0.99)
    assert read_summary(run, []).best["step"] == 1500
    watcher = RunWatcher(tmp_path)
    first = watcher.summary(run)
    assert (first.best["step"], first.best["monitor_error"], first.best["mean_count_ratio"]) == (1500, 0.177, 0.99)
    assert watcher.summary(run) is first  # nothing changed: cached
    assert watcher.summary(bare).best == {} and RunList.cells(watcher.summary(bare))[COLUMNS.index("best")] == "-"

    add_best(run, 2500, 0.15, 1.01)  # as keep_if_best replaces it: the new one in place, then the old removed
    shutil.rmtree(old)
    second = watcher.summary(run)  # only best/ changed in this finished run
    assert second.best["step"] == 2500
    assert RunList.cells(second)[COLUMNS.index("best")] == "2500 · 0.150 · x1.01"

    (run / "best" / "step-00002500" / "meta.json").write_text('{"step": 25')  # torn: no best, no failure
    assert watcher.summary(run).best == {}


def test_metrics_plot_follows_a_growing_metrics_file(tmp_path):
    run = make_run(tmp_path, "live", steps=3)

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            plot = app.screen.query_one(MetricsPlot)
            assert await wait_for(pilot, lambda: plot.steps == [0, 1, 2])
            for step in (3, 4):
                rundir.append_metrics(run, metric(step))
            assert await wait_for(pilot, lambda: plot.steps == [0, 1, 2, 3, 4])
            assert plot.series["critic_loss"][-1] == -5.0
            assert len(plot.series["wasserstein"]) == 5

    asyncio.run(go())


def test_statistics_and_slice_views_show_the_latest_samples(tmp_path):
    run = make_run(tmp_path / "runs", "m3", data_dir="data")
    # config_path's project root is tmp_path, so data/ resolves to tmp_path/data
    config = rundir.read_json(run / rundir.CONFIG)
    config["run"]["config_path"] = str(tmp_path / "configs" / "tiny.toml")
    rundir.write_json_atomic(run / rundir.CONFIG, config)
    add_samples(run, tmp_path / "data", side=16, level=4)

    async def go():
        app = app_for(tmp_path / "runs")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            psd = app.screen.query_one("#stat-psd", StatPlot)
            assert await wait_for(pilot, lambda: len(psd.frac) == 8)
            assert psd.frac[0] == pytest.approx(0.5)  # fake = 1.5 x real
            assert "step 4" in str(app.screen.query_one("#stats-message").render())
            await pilot.press("3")
            fake, real = app.screen.query_one("#fake-map", HeatMap), app.screen.query_one("#real-map", HeatMap)
            assert await wait_for(pilot, lambda: fake.image is not None and real.image is not None)
            # the real cube is shown at the run's level (M3: 16^3 block-averaged to 4^3), like the samples
            assert fake.image.shape == real.image.shape == (4, 4)
            slider = app.screen.query_one(Slider)
            assert slider.maximum == 3 and slider.value == 0
            await pilot.press("plus", "plus")
            assert slider.value == 2

    asyncio.run(go())


def test_every_tab_is_a_run_pane_drawn_from_the_selected_run_when_shown(tmp_path, monkeypatch):
    runs = {name: make_run(tmp_path, name) for name in ("a", "b")}
    drawn: list[tuple[str, RunUpdate]] = []
    for pane_class in PANES:
        def spy(self, run, draw=pane_class.refresh_from):
            drawn.append((self.id, run))
            draw(self, run)
        monkeypatch.setattr(pane_class, "refresh_from", spy)

    def draws(pane: str, name: str) -> int:
        return sum(1 for pid, run in drawn if pid == pane and run.summary.name == name)

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            view = app.screen.query_one(TrainingView)
            assert [pane.id for pane in view.panes] == ["losses", "statistics", "slices"]
            assert all(isinstance(pane, RunPane) for pane in view.panes)
            assert await wait_for(pilot, lambda: draws("losses", "a") == 1)
            assert {pid for pid, _ in drawn} == {"losses"}  # hidden tabs wait until shown
            await pilot.press("2")
            assert await wait_for(pilot, lambda: draws("statistics", "a") == 1)
            assert "no statistics yet" in str(app.screen.query_one("#stats-message").render())
            await pilot.press("3")
            assert await wait_for(pilot, lambda: draws("slices", "a") == 1)
            await pilot.pause(0.5)  # several refreshes, nothing changed on disk: no redraw
            assert draws("slices", "a") == 1
            await pilot.press("down")  # the shown tab follows the selected run
            assert await wait_for(pilot, lambda: draws("slices", "b") == 1)
            await pilot.press("1")
            rundir.append_metrics(runs["b"], metric(5))
            assert await wait_for(pilot, lambda: app.screen.query_one(MetricsPlot).steps == [0, 1, 2, 3, 4, 5])

    asyncio.run(go())
    assert all(run.path == runs[run.summary.name] and len(run.records) >= 5 for _, run in drawn)


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


def test_stop_sends_sigterm_and_resume_relaunches_train(tmp_path, monkeypatch):
    trainer = sleeper(tmp_path)
    make_run(tmp_path, "a-running", state="running", pid=trainer.pid)
    stopped = make_run(tmp_path, "b-stopped", argv=["nbgan", "train", "--steps", "7"])
    devices.record_device(stopped, "gpu:1")  # a resume goes back to the recorded device
    launched = []
    monkeypatch.setattr(processes, "launch",
                        lambda args, log, backend=None, device=None: launched.append((args, backend, device)))

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            table = run_list(app)
            assert await wait_for(pilot, lambda: table.row_count == 2)
            await pilot.press("s")  # the cursor is on the first row, the running one
            assert trainer.wait(timeout=10) == 0
            assert (tmp_path / "got-sigterm").read_text() == "yes"
            await pilot.press("down", "r")
            assert await wait_for(pilot, lambda: bool(launched))

    try:
        asyncio.run(go())
    finally:
        trainer.kill()
    args, backend, device = launched[0]
    assert args == ["train", "--config", "/nowhere/configs/tiny.toml", "--scale", "3",
                    "--run-dir", str(tmp_path / "b-stopped"), "--steps", "7"]
    assert backend == "tensorflow" and device == "gpu:1"


def test_quit_asks_while_training_and_leaves_it_running(tmp_path):
    trainer = sleeper(tmp_path)
    make_run(tmp_path, "busy", state="running", pid=trainer.pid)

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: run_list(app).row_count == 1)
            await pilot.press("q")
            assert await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("l")
            assert await wait_for(pilot, lambda: not app.is_running)

    try:
        asyncio.run(go())
        assert trainer.poll() is None  # quitting did not touch training
    finally:
        trainer.kill()


def tiny_configs(tmp_path: Path, tiny_config) -> Path:
    """A configs/ directory with tiny.toml pointing at the session's simulated tiny data."""
    configs = tmp_path / "configs"
    configs.mkdir()
    text = (ROOT / "configs" / "tiny.toml").read_text()
    cache = tiny_config.data.simulation.cache
    (configs / "tiny.toml").write_text(text.replace('cache = "data/tiny-sim"', f'cache = "{cache}"'))
    return configs


def stop_leftover(run: Path) -> None:
    """Never leave a trainer behind a failed test."""
    state = rundir.effective_state(run) if run.exists() else {}
    if state.get("state") == "running" and state.get("pid"):
        os.kill(int(state["pid"]), 9)


@pytest.mark.slow
def test_training_from_the_form_plots_steps_and_stops_and_resumes(tmp_path, tiny_config, tiny_cubes):
    configs = tiny_configs(tmp_path, tiny_config)
    run = tmp_path / "runs" / "from-form"
    log = run / processes.TRAIN_LOG

    def logs() -> str:
        return log.read_text()[-2000:] if log.exists() else "no train.log"

    async def go():
        app = app_for(tmp_path / "runs", configs)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause(0.2)
            app.screen.query_one("#name").value = "from-form"
            app.screen.query_one("#steps").value = "100000"  # runs until stopped
            await pilot.press("ctrl+s")
            plot = app.screen.query_one(MetricsPlot)
            assert await wait_for(pilot, lambda: len(plot.steps) >= 2, timeout=150), logs()
            assert run_list(app).summaries["from-form"].state == "running"
            await pilot.press("s")  # SIGTERM: checkpoint, then state "stopped"
            assert await wait_for(pilot, lambda: run_list(app).summaries["from-form"].state == "stopped",
                                  timeout=60), logs()
            stopped_at = run_list(app).summaries["from-form"].step
            await pilot.press("r")  # the same nbgan train again: resumes from the checkpoint
            assert await wait_for(pilot, lambda: plot.steps and plot.steps[-1] > stopped_at, timeout=150), logs()
            await pilot.press("s")
            assert await wait_for(pilot, lambda: run_list(app).summaries["from-form"].state == "stopped",
                                  timeout=60), logs()

    try:
        asyncio.run(go())
    finally:
        stop_leftover(run)
    assert log.read_text().count("stopped at step") == 2, logs()


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
    from nbgan_app.cubes import write_cube

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


def test_stat_plot_survives_degenerate_statistics():
    """All-zero generated cubes give NaN/zero spectra: the plot shows what it can, never raises."""
    from textual.app import App

    from tui.widgets.stat_plot import StatPlot

    real = {"k": [0.1, 0.2, 0.4], "mean": [100.0, 50.0, 10.0], "std": [1.0, 1.0, 1.0]}
    fake = {"k": [0.1, 0.2, 0.4], "mean": [float("nan"), 0.0, 0.0], "std": [0.0, 0.0, 0.0]}

    class One(App):
        def compose(self):
            yield StatPlot("psd", id="p")

    async def go():
        app = One()
        async with app.run_test(size=(80, 24)) as pilot:
            plot = app.query_one("#p", StatPlot)
            plot.show(real, fake)
            await pilot.pause(0.2)
            assert "cannot draw" not in str(plot.render())
            plot.show(fake, fake)  # nothing drawable at all
            await pilot.pause(0.2)
            plot.render()

    asyncio.run(go())


# --- devices (issue 13): the panel, the device choice, the chain in one action, the memory guard ---------

from nbgan_app.devices import DeviceMonitor, NvmlSource  # noqa: E402
from test_devices import GIB, FakeNvml, gpu  # noqa: E402
from tui.widgets.devices_panel import DevicesPanel  # noqa: E402

WIDE = (130, 42)  # a user's tmux window on the GPU server
# a stand-in `nbgan`: prints its device environment, leaves a finished run directory (train) or a sample file
FAKE_DEVICE_NBGAN = """
import json, os, sys, time
args = sys.argv[1:]
print("CUDA_VISIBLE_DEVICES=" + repr(os.environ.get("CUDA_VISIBLE_DEVICES")), flush=True)
if args[0] == "train":
    run = args[args.index("--run-dir") + 1]
    scale = args[args.index("--scale") + 1]
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"config": {}, "run": {"scale": scale, "backend": "tensorflow", "config_path": "x.toml"}}, f)
    with open(os.path.join(run, "state.json"), "w") as f:
        json.dump({"state": "finished", "step": 0, "pid": os.getpid(), "error": None, "updated": time.time()}, f)
    sys.exit(0)
sys.exit(3)
"""


def fake_devices(*gpus: dict) -> tuple[DeviceMonitor, FakeNvml]:
    fake = FakeNvml(list(gpus))
    return DeviceMonitor(NvmlSource(fake)), fake


def panel_lines(app) -> list[str]:
    from rich.text import Text

    return [Text.from_markup(line).plain for line in app.screen.query_one(DevicesPanel).lines]


def fake_nbgan(tmp_path: Path, monkeypatch) -> None:
    script = tmp_path / "fake_device_nbgan.py"
    script.write_text(FAKE_DEVICE_NBGAN)
    monkeypatch.setattr(processes, "nbgan_command", lambda: [sys.executable, str(script)])


def test_devices_panel_shows_each_gpu_its_load_and_the_runs_on_it(tmp_path):
    trainer = sleeper(tmp_path)
    on_one = make_run(tmp_path, "a-on-gpu1", state="running", pid=trainer.pid)
    devices.record_device(on_one, "gpu:1")
    devices.record_device(make_run(tmp_path, "b-stopped"), "gpu:0")  # not running: uses nothing
    make_run(tmp_path, "c-from-shell", state="running", pid=trainer.pid)  # no device recorded
    monitor, fake = fake_devices(gpu(used=10, util=35, pids=(99999,)), gpu(used=70, util=80, pids=()))
    fake.gpus[0]["pids"] = (trainer.pid,)  # NVML sees the shell run's process on GPU 0

    async def go():
        app = create_app(tmp_path, ROOT / "configs", refresh_s=0.1, devices=monitor)
        async with app.run_test(size=WIDE) as pilot:
            assert await wait_for(pilot, lambda: len(panel_lines(app)) == 3)
            gpu0, gpu1, cpu = panel_lines(app)
            # a run that recorded its device is on it; one started from a shell is found by its pid
            assert gpu0 == "gpu:0 NVIDIA H200  mem 10.0/140 GiB  util  35%  runs: c-from-shell"
            assert gpu1 == "gpu:1 NVIDIA H200  mem 70.0/140 GiB  util  80%  runs: a-on-gpu1"
            assert cpu.startswith(f"cpu {len(os.sched_getaffinity(0))} cores  load ")
            assert app.screen.query_one(DevicesPanel).border_title == "Devices (2 GPUs)"
            table = run_list(app)
            assert await wait_for(pilot, lambda: table.row_count == 3)
            assert [str(table.get_row(name)[4]) for name in ("a-on-gpu1", "b-stopped", "c-from-shell")] == \
                ["gpu:1", "gpu:0", "-"]
            fake.gpus[1]["used"] = 100 * GIB  # refreshed at the plots' rate
            assert await wait_for(pilot, lambda: "mem 100.0/140 GiB" in panel_lines(app)[1])
            await pilot.pause(0.5)
        assert fake.inits == 1 and fake.shutdowns == 1  # NVML started once, shut down on exit

    try:
        asyncio.run(go())
    finally:
        trainer.kill()


def test_devices_panel_shows_the_cpu_where_there_is_no_gpu(tmp_path):
    """The real sources of this machine: NVML (absent on a CPU machine) and the CPU's cores and load."""

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=WIDE) as pilot:
            assert await wait_for(pilot, lambda: bool(panel_lines(app)))
            lines = panel_lines(app)
            assert lines[-1].startswith(f"cpu {len(os.sched_getaffinity(0))} cores  load ")
            snapshot = app.screen.devices.latest()
            if not snapshot.gpus:
                panel = app.screen.query_one(DevicesPanel)
                assert lines == [lines[-1]] and panel.border_title == "Devices (0 GPUs)"
                assert panel.border_subtitle.startswith("no GPU")

    asyncio.run(go())


def test_new_run_form_picks_the_least_loaded_gpu_warns_on_memory_and_starts_there(tmp_path, monkeypatch):
    from textual.widgets import Label, Select

    fake_nbgan(tmp_path, monkeypatch)
    # gpu:1 is idle but nearly full: the default (least loaded) whose free memory the run does not fit
    monitor, _ = fake_devices(gpu(used=10, util=90), gpu(used=139.9, util=5))
    runs = tmp_path / "runs"
    runs.mkdir()

    async def go():
        app = create_app(runs, ROOT / "configs", refresh_s=0.1, devices=monitor)
        async with app.run_test(size=WIDE) as pilot:
            await pilot.press("n")
            await pilot.pause(0.3)
            form = app.screen
            assert form.query_one("#device", Select).value == "gpu:1"
            form.query_one("#config", Select).value = str(ROOT / "configs" / "demo.toml")
            form.query_one("#name").value = "guarded"
            await pilot.pause(0.2)
            memory, error = str(form.query_one("#memory", Label).render()), str(form.query_one("#error").render())
            assert "for this run" in memory and "gpu:1 has 102 MiB free" in memory
            assert error.startswith("warning: needs about 529 MiB but gpu:1 has 102 MiB free")
            await pilot.press("ctrl+s")  # warned: a first start only says so
            await pilot.pause(0.2)
            assert app.screen is form and "Press Start again" in str(form.query_one("#error").render())
            form.query_one("#device", Select).value = "gpu:0"  # 130 GiB free: fits
            await pilot.pause(0.2)
            assert str(form.query_one("#error").render()) == ""
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: "guarded" in run_list(app).summaries, timeout=30)
            assert await wait_for(pilot, lambda: run_list(app).summaries["guarded"].state == "finished")
            assert str(run_list(app).get_row("guarded")[4]) == "gpu:0"

    asyncio.run(go())
    recorded = rundir.read_json(runs / "guarded" / devices.DEVICE_FILE)
    assert recorded["device"] == "gpu:0" and recorded["name"] == "NVIDIA H200"
    assert "CUDA_VISIBLE_DEVICES='0'" in (runs / "guarded" / processes.TRAIN_LOG).read_text()


def test_sampling_screen_device_field_and_one_line_labels_at_130x42(tmp_path, monkeypatch):
    from textual.widgets import Label, Select

    fake_nbgan(tmp_path, monkeypatch)
    for scale in ("3", "2", "1"):
        make_run(tmp_path / "runs", f"m{scale}", scale=scale)
    monitor, _ = fake_devices(gpu(util=70), gpu(util=20))

    async def go():
        app = create_app(tmp_path / "runs", ROOT / "configs", refresh_s=0.1, devices=monitor)
        async with app.run_test(size=WIDE) as pilot:
            assert await wait_for(pilot, lambda: run_list(app).row_count == 3)
            await pilot.press("c")
            await pilot.pause(0.3)
            screen = app.screen
            labels = {str(label.render()): label for label in screen.query(Label)}
            for text in ("order", "device", "size", "M3"):
                size = labels[text].size  # without its padding
                assert size.height == 1 and size.width >= len(text), (text, size)  # one line, not wrapped
            assert screen.query_one("#device", Select).value == "gpu:1"
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: screen.job is not None and screen.job.done, timeout=30)
            assert "CUDA_VISIBLE_DEVICES='1'" in screen.job.sample.log.read_text()
            assert screen.job.device == "gpu:1"

    asyncio.run(go())


def test_runs_list_and_statistics_tab_show_median_errors_beside_their_floor(tmp_path):
    import re

    from nbgan_app.stats.scores import compare
    from tui.samples import percent

    rng = np.random.default_rng(0)
    real, fake = rng.poisson(3.0, (4, 16, 16, 16)), rng.poisson(3.3, (3, 16, 16, 16))
    scores = compare(real, fake, 64.0)
    run = make_run(tmp_path, "scored")
    (run / rundir.SAMPLES).mkdir()
    from tui_fixtures import stats
    rundir.write_json_atomic(run / rundir.SAMPLES / rundir.LATEST_STATS,
                             json.loads(json.dumps({"step": 4, "real": stats(), "fake": stats(1.5), "scores": scores},
                                                   default=float)))
    psd = scores["psd"]
    expected = f"PSD {percent(psd['median_abs_frac_diff'])} (floor {percent(psd['floor']['median_abs_frac_diff']['mean'])})"

    async def go():
        app = app_for(tmp_path)
        async with app.run_test(size=WIDE) as pilot:
            table = run_list(app)
            assert await wait_for(pilot, lambda: table.row_count == 1)
            cell = str(table.get_row("scored")[-1])
            assert cell.startswith(expected + " mass ") and " peak " in cell
            assert re.fullmatch(r"(\w+ \d+(\.\d)?% \(floor \d+(\.\d)?%\) ?){3}", cell), cell
            await pilot.press("2")
            message = app.screen.query_one("#stats-message")
            assert await wait_for(pilot, lambda: "median error" in str(message.render()))
            text = str(message.render())
            assert f"median error (lower is better): {expected}  mass " in text
            assert f"released 1/Frechet (higher is better): psd {psd['score']:.3g} (floor " in text

    asyncio.run(go())


def test_nbgan_tui_refuses_a_missing_or_plain_file_runs_directory(tmp_path, capsys):
    from tui.app import main

    plain = tmp_path / "runs.txt"
    plain.write_text("")
    for path, why in ((tmp_path / "nonexistent", "no such directory"), (plain, "not a directory")):
        done = subprocess.run([sys.executable, "-m", "nbgan_app", "tui", "--runs", str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr == f"nbgan tui: error: --runs {path}: {why}\n"
        assert main(["--runs", str(path)]) == 2
        assert capsys.readouterr().err == f"nbgan-tui: error: --runs {path}: {why}\n"
    assert main(["--runs", str(tmp_path), "--configs", str(tmp_path / "none")]) == 2
    assert "--configs" in capsys.readouterr().err


@pytest.mark.slow
def test_train_the_chain_in_one_action_starts_three_runs_one_per_gpu(tmp_path, tiny_config, tiny_cubes):
    """Three real `nbgan train` processes (tiny config) from one key, spread over three (stand-in) GPUs:
    each child gets its GPU's CUDA_VISIBLE_DEVICES (none exists here, so TensorFlow trains on the CPU)."""
    configs = tiny_configs(tmp_path, tiny_config)
    runs = tmp_path / "runs"
    runs.mkdir()
    names = [f"chain-{s}" for s in ("m3", "m2", "m1")]
    # the least loaded first: gpu:2, then gpu:0, then gpu:1
    monitor, _ = fake_devices(gpu(util=30), gpu(util=60), gpu(util=10))

    async def go():
        app = create_app(runs, configs, refresh_s=0.2, devices=monitor)
        async with app.run_test(size=WIDE) as pilot:
            await pilot.press("n")
            await pilot.pause(0.3)
            assert app.screen.query_one("#device").value == "gpu:2"
            app.screen.query_one("#name").value = "chain"
            await pilot.press("ctrl+t")
            assert await wait_for(pilot, lambda: all((runs / n / processes.TRAIN_LOG).exists() for n in names))
            table = run_list(app)
            done = lambda: set(table.summaries) == set(names) and all(  # noqa: E731
                table.summaries[n].state == "finished" for n in names)
            assert await wait_for(pilot, done, timeout=400), [
                (runs / n / processes.TRAIN_LOG).read_text()[-1500:] for n in names if (runs / n).exists()]
            assert [str(table.get_row(n)[4]) for n in names] == ["gpu:2", "gpu:0", "gpu:1"]
            assert [table.summaries[n].scale for n in names] == ["3", "2", "1"]

    try:
        asyncio.run(go())
    finally:
        for name in names:
            stop_leftover(runs / name)
    pids = {rundir.read_state(runs / n)["pid"] for n in names}
    assert len(pids) == 3  # three processes
    for name, gpu_index in zip(names, ("2", "0", "1")):
        assert rundir.read_json(runs / name / devices.DEVICE_FILE)["cuda_visible_devices"] == gpu_index
        assert rundir.read_state(runs / name)["step"] == 4
