"""`nbgan demo` end to end on a shrunk config: --train trains and scores; the default scores a preset."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("chain M3 -> M2 -> M1", "M2 -> M1 given I3", "M1 given I2", "Mu (uni-scale)", "lognormal mock")


@pytest.fixture
def demo_toml(tmp_path):
    text = (ROOT / "configs" / "tiny.toml").read_text()
    text = text.replace('cache = "data/tiny-sim"', f'cache = "{tmp_path / "sim"}"')
    text = text.replace("boxes = 3", "boxes = 6")
    text += ('\n[demo]\nsteps_m3 = 2\nsteps_m2 = 2\nsteps_m1 = 2\nsteps_mu = 2\nsamples = 2\n'
             f'out = "{tmp_path / "demo"}"\nm3_latent_scales = [0.5, 1.0]\n')
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path


def _demo(config, *flags):
    return subprocess.run([sys.executable, "-m", "nbgan_app", "demo", "--config", str(config), "--n", "4", *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_demo_trains_then_scores_against_fresh_boxes_and_a_preset_of_it_scores_the_same(demo_toml, tmp_path):
    first = _demo(demo_toml, "--train")
    assert first.returncode == 0, first.stderr[-2000:]
    out = tmp_path / "demo"
    for name in ("m3", "m2", "m1", "mu"):
        state = json.loads((out / name / "state.json").read_text())
        assert state["state"] == "finished" and state["step"] == 2
    scores = json.loads((out / "scores.json").read_text())
    assert set(ROWS) | {"PM training suite (other boxes)"} == set(scores["rows"])
    # M3's latent scale was chosen among the config's candidates on validation boxes, and the chain drew with it
    choice = json.loads((out / "m3" / "latent_scale.json").read_text())
    assert choice["step"] == 2 and [row["latent_scale"] for row in choice["table"]] == [0.5, 1.0]
    assert choice["latent_scale"] == min(choice["table"], key=lambda row: row["error"])["latent_scale"]
    assert "seeds 13..16" in choice["chosen_on"]  # the validation boxes: after the 6 training boxes
    import h5py

    with h5py.File(out / "samples.h5") as f:
        assert json.loads(f.attrs["latent_scales"]) == [choice["latent_scale"], 1.0, 1.0]
    for row in scores["rows"].values():
        assert 0 <= row["psd"] and 0 <= row["mass_hist"] and row["floor"]["psd"] > 0
    # the test boxes are fresh: their own cache, seeds far past the training suite's
    test_files = sorted((tmp_path / "sim-test").glob("*.h5"))
    assert len(test_files) == 4 and "seeds 100007..100010" in scores["test"]
    report = (out / "report.md").read_text()
    assert "| chain M3 -> M2 -> M1 |" in report and "floor" in report and "statistics.png" in report
    assert (out / "statistics.png").stat().st_size > 1000
    assert re.search(r"lognormal mock\s+\d", first.stdout)  # the table is printed

    # the trained runs as a preset: the default demo scores them without training
    from nbgan_app.config import load_config
    from nbgan_app.dataset import load_dataset, split_dataset
    from nbgan_app.demo import MOCK_SPECTRUM, run_demo, save_mock_spectrum
    from nbgan_app.presets import get_preset, write_manifest

    root = tmp_path / "presets"
    preset = root / "tiny"
    preset.mkdir(parents=True)
    for name in ("m3", "m2", "m1", "mu"):
        (out / name).rename(preset / name)
    config = load_config(demo_toml)
    counts, box_size = load_dataset(config, progress=False)
    save_mock_spectrum(split_dataset(config, counts)[0], box_size, preset / MOCK_SPECTRUM)
    manifest = write_manifest(preset, description="test", config="tiny.toml", command="nbgan demo --train",
                              chain=["m3", "m2", "m1"], scores={})
    assert manifest["runs"]["m1"]["steps"] == manifest["runs"]["m1"]["sampled_step"] == 2
    assert manifest["size_bytes"] > 0
    assert get_preset("tiny", root).chain == [preset / "m3", preset / "m2", preset / "m1"]
    result = run_demo(config, n=4, preset="tiny", presets_root=root)
    assert set(result["rows"]) == set(ROWS)
    chain = "chain M3 -> M2 -> M1"
    assert result["rows"][chain]["psd"] == pytest.approx(scores["rows"][chain]["psd"])  # same runs, same seed
    assert result["rows"]["Mu (uni-scale)"]["psd"] == pytest.approx(scores["rows"]["Mu (uni-scale)"]["psd"])
    assert (out / "preset" / "report.md").exists()
    # a preset without Mu scores its chain alone
    (preset / "mu").rename(tmp_path / "mu")
    write_manifest(preset, description="test", config="tiny.toml", command="nbgan demo --train",
                   chain=["m3", "m2", "m1"], scores={})
    assert set(run_demo(config, n=4, preset="tiny", presets_root=root)["rows"]) == set(ROWS) - {"Mu (uni-scale)"}
    # the manifest records the latent scale each run is sampled at (nbgan_app.latent_scale)
    from nbgan_app.latent_scale import write_choice

    assert manifest["runs"]["m3"]["latent_scale"] == choice["latent_scale"]
    write_choice(preset / "m3", {"step": manifest["runs"]["m3"]["sampled_step"], "latent_scale": 1.5})
    manifest = write_manifest(preset, description="test", config="tiny.toml", command="nbgan demo --train",
                              chain=["m3", "m2", "m1"], scores={})
    assert manifest["runs"]["m3"]["latent_scale"] == 1.5 and manifest["runs"]["m1"]["latent_scale"] == 1.0
