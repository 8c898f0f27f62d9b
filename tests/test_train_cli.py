"""`nbgan train` as a process: SIGKILL and resume, SIGTERM stops after a checkpoint, exit codes."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbgan_app import checkpoints, rundir

ROOT = Path(__file__).resolve().parents[1]




def _train(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "nbgan_app", "train", *args, "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for_checkpoint(run, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if checkpoints.latest_checkpoint(run) and checkpoints.latest_checkpoint(run)[0] >= 2:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_rerun_resumes_without_duplicate_steps(tiny_toml, tmp_path):
    run = tmp_path / "run"
    args = ["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "400"]
    proc = _train(args)
    _wait_for_checkpoint(run, proc)
    proc.kill()
    proc.wait()
    killed_at = checkpoints.latest_checkpoint(run)[0]
    assert rundir.effective_state(run)["state"] in ("failed", "finished")
    args[-1] = str(killed_at + 4)
    done = _train(args)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    steps = [r["step"] for r in rundir.read_metrics(run)]
    assert steps == list(range(1, killed_at + 5))
    assert rundir.read_state(run)["state"] == "finished"


def test_sigterm_stops_gracefully_with_checkpoint(tiny_toml, tmp_path):
    run = tmp_path / "run"
    proc = _train(["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "100000"])
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    state = rundir.read_state(run)
    assert state["state"] == "stopped"
    assert checkpoints.latest_checkpoint(run)[0] == state["step"]
    assert not rundir.is_locked(run)


@pytest.mark.parametrize("args, message", [
    (["--config", "nope.toml", "--scale", "3"], "no such config"),
    (["--config", "configs/tiny.toml", "--scale", "3", "--steps", "0"], "--steps"),
])
def test_bad_input_exits_2(args, message, tmp_path):
    proc = _train(args + ["--run-dir", str(tmp_path / "r")])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in err and len(err.strip().splitlines()) == 1
