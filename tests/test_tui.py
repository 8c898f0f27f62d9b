"""Pilot tests of the dashboard: widget state after keys, with fixture run directories."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nbgan_app import rundir
from nbgan_app.cubes import write_cube
from tui_fixtures import add_samples, make_run, metric, sleeper

textual = pytest.importorskip("textual")

from tui import processes  # noqa: E402
from tui.app import create_app  # noqa: E402
from tui.chain_sampling import ChainSampling  # noqa: E402
from tui.screens.quit import QuitScreen  # noqa: E402
from tui.widgets.heat_map import HeatMap  # noqa: E402
from tui.widgets.metrics_plot import MetricsPlot  # noqa: E402
from tui.widgets.panes import PANES, RunPane, RunUpdate  # noqa: E402
from tui.widgets.run_list import RunList  # noqa: E402
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
    make_run(tmp_path, "m3-a", scale="3", state="finished")
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
    make_run(tmp_path, "b-stopped", argv=["nbgan", "train", "--steps", "7"])
    launched = []
    monkeypatch.setattr(processes, "launch", lambda args, log, backend=None: launched.append((args, backend)))

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
    args, backend = launched[0]
    assert args == ["train", "--config", "/nowhere/configs/tiny.toml", "--scale", "3",
                    "--run-dir", str(tmp_path / "b-stopped"), "--steps", "7"]
    assert backend == "tensorflow"


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


async def sample_from_screen(app, pilot, m1: Path | None = None):
    """Open the sampling screen, pick M1 (default: the first scale-1 run), start, wait for the end."""
    assert await wait_for(pilot, lambda: run_list(app).row_count >= 3)
    await pilot.press("c")
    await pilot.pause(0.3)
    screen = app.screen
    if m1 is not None:
        screen.query_one("#m1").value = str(m1)
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
    m1 = runs / "m1-held-out-4"  # M1's copy whose config names 6 cubes, 4 held out
    shutil.copytree(tiny_runs["1"], m1)
    config = rundir.read_json(m1 / rundir.CONFIG)
    config["config"]["data"] = {"dir": str(data), "box_size": 64.0, "held_out": 4}
    rundir.write_json_atomic(m1 / rundir.CONFIG, config)

    async def go():
        app = app_for(runs)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await sample_from_screen(app, pilot, m1)
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
