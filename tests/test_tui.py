"""Pilot tests of the dashboard's runs list and run views: widget state after keys, with fixture run directories."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nbgan_app import rundir
from tui_fixtures import add_best, add_samples, make_run, metric

textual = pytest.importorskip("textual")

from tui.widgets.heat_map import HeatMap  # noqa: E402
from tui.widgets.metrics_plot import MetricsPlot  # noqa: E402
from tui.widgets.panes import PANES, RunPane, RunUpdate  # noqa: E402
from tui.runs import RunWatcher, format_best, read_summary  # noqa: E402
from tui.widgets.run_list import COLUMNS, RunList  # noqa: E402
from tui.widgets.slider import Slider  # noqa: E402
from tui.widgets.stat_plot import StatPlot  # noqa: E402
from tui.widgets.training_view import TrainingView  # noqa: E402
from tui_pilot import ROOT, SIZE, WIDE, app_for, run_list, wait_for  # noqa: E402


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


