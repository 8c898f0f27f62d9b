"""Helpers for the dashboard's pilot tests: an app over a runs directory, waiting on its state."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nbgan_app import rundir
from tui.app import create_app
from tui.widgets.run_list import RunList

ROOT = Path(__file__).resolve().parents[1]
SIZE = (80, 24)
WIDE = (130, 42)  # a user's tmux window on the GPU server


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

