"""End to end: the real `nbgan-tui` script in a tmux pane of 80x24; keys in, pane text out."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_fixtures import make_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "nbgan-tui"
pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
    pytest.mark.skipif(not SCRIPT.exists(), reason="nbgan-tui is not installed (pip install -e .)"),
]


class Pane:
    """One tmux session on its own server (socket `-L name`).

    A shared default server exits when its last session is killed, and a
    `new-session` racing that exit fails with "server exited unexpectedly";
    a private server per pane takes that race away.
    """

    def __init__(self, name: str, command: str):
        self.name = name
        self.tmux = ["tmux", "-L", name]
        subprocess.run([*self.tmux, "new-session", "-d", "-s", name, "-x", "80", "-y", "24", command], check=True)

    def text(self) -> str:
        done = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return done.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} not on screen after {timeout} s:\n{self.text()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def pane_factory():
    panes = []

    def make(command: str) -> Pane:
        panes.append(Pane(f"nbgan-test-{time.monotonic_ns()}", command))
        return panes[-1]

    yield make
    for pane in panes:
        pane.close()


def test_dashboard_in_tmux_shows_runs_help_and_quits(tmp_path, pane_factory):
    make_run(tmp_path, "m3-fixture", scale="3", state="finished")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "config.json").write_text("{")
    pane = pane_factory(f"env TERM=xterm-256color {SCRIPT} --runs {tmp_path} --configs {ROOT / 'configs'}")
    text = pane.wait_for("m3-fixture")
    assert "garbled" in text and "corrupt" in text
    assert "New run" in text and "Quit" in text  # the footer
    pane.keys("Down")
    pane.wait_for("m3-fixture  M3  finished")  # the live view's status line follows the cursor
    pane.keys("?")
    pane.wait_for("nbgan dashboard")
    pane.keys("Escape", "q")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "m3-fixture" in pane.text():
        time.sleep(0.2)
    assert "m3-fixture" not in pane.text()


@pytest.mark.slow
def test_training_started_from_the_keys_writes_metrics(tmp_path, pane_factory, tiny_config, tiny_cubes):
    configs = tmp_path / "configs"
    configs.mkdir()
    text = (ROOT / "configs" / "tiny.toml").read_text()
    cache = tiny_config.data.simulation.cache
    (configs / "tiny.toml").write_text(text.replace('cache = "data/tiny-sim"', f'cache = "{cache}"'))
    runs = tmp_path / "runs"
    runs.mkdir()  # the dashboard refuses a --runs directory that does not exist
    pane = pane_factory(f"env TERM=xterm-256color {SCRIPT} --runs {runs} --configs {configs}")
    pane.wait_for("New run")
    pane.keys("n")
    pane.wait_for("New training run")
    pane.keys("C-s")  # the defaults: tiny.toml, scale 3, its own step count
    deadline = time.monotonic() + 180
    metrics = []
    while time.monotonic() < deadline and not metrics:
        metrics = list(runs.glob("*/metrics.jsonl"))
        time.sleep(0.5)
    logs = "".join(p.read_text()[-2000:] for p in runs.glob("*/train.log"))
    assert metrics and metrics[0].read_text().strip(), logs
    pane.wait_for("tiny.toml")
