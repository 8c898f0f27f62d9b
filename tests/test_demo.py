"""`nbgan demo` end to end on a shrunk config: every stage runs, a rerun reuses them."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_toml(tmp_path):
    text = (ROOT / "configs" / "tiny.toml").read_text()
    text = text.replace('cache = "data/tiny-sim"', f'cache = "{tmp_path / "sim"}"')
    text = text.replace("boxes = 3", "boxes = 6").replace("held_out = 1", "held_out = 4")
    text += f'\n[demo]\nsteps_m3 = 2\nsteps_m2 = 2\nsteps_m1 = 2\nsamples = 2\nout = "{tmp_path / "demo"}"\n'
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path


def _demo(config):
    return subprocess.run([sys.executable, "-m", "nbgan_app", "demo", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_demo_runs_every_stage_then_reuses_them(demo_toml, tmp_path):
    first = _demo(demo_toml)
    assert first.returncode == 0, first.stderr[-2000:]
    out = tmp_path / "demo"
    for name in ("m3", "m2", "m1"):
        state = json.loads((out / name / "state.json").read_text())
        assert state["state"] == "finished" and state["step"] == 2
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_real"] == 4 and scores["n_fake"] == 2
    assert "floor" in scores["psd"]
    report = (out / "report.md").read_text()
    assert "| psd |" in report and "statistics.png" in report
    assert (out / "statistics.png").stat().st_size > 1000
    assert re.search(r"psd\s+\S+", first.stdout)  # the score table is printed
    second = _demo(demo_toml)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing" in second.stderr
    assert json.loads((out / "m3" / "state.json").read_text())["step"] == 2
