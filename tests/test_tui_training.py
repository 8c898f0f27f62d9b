"""Pilot tests of training from the dashboard: stop, resume, quit, a run started from the form."""

from __future__ import annotations

import asyncio

import pytest

from nbgan_app import devices
from tui_fixtures import make_run, sleeper

textual = pytest.importorskip("textual")

from tui import processes  # noqa: E402
from tui.screens.quit import QuitScreen  # noqa: E402
from tui.widgets.metrics_plot import MetricsPlot  # noqa: E402
from tui_pilot import SIZE, app_for, run_list, stop_leftover, tiny_configs, wait_for  # noqa: E402


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


