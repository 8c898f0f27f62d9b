"""Pilot tests of the dashboard's devices: the panel, the device choice, the chain in one action, the memory guard."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from nbgan_app import devices, rundir
from nbgan_app.devices import DeviceMonitor, NvmlSource
from test_devices import GIB, FakeNvml, gpu
from tui_fixtures import make_run, sleeper

textual = pytest.importorskip("textual")

from tui import processes  # noqa: E402
from tui.app import create_app  # noqa: E402
from tui.widgets.devices_panel import DevicesPanel  # noqa: E402
from tui_pilot import ROOT, WIDE, app_for, run_list, stop_leftover, tiny_configs, wait_for  # noqa: E402

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
