"""The evaluation study (`nbgan evaluate`): the lognormal mock, budgets, the report end to end, bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nbgan_app.cli import main
from nbgan_app.stats.power_spectrum import power_spectrum
from nbgan_app.study import budgets
from nbgan_app.study.mock import MockSpectrum, gaussian_spectrum, lognormal_mocks, measure_spectrum
from nbgan_app.study.settings import StudyConfig, load_study

ROOT = Path(__file__).resolve().parents[1]
TINY_STUDY = """[study]
eval_boxes = 4
n_fake = 4
minutes_per_model = 12.0
max_steps = 2
architectures = ["inception_residual"]
floor_splits = 5
"""


def smooth_target(amplitude: float, mean_count: float = 50.0, grid: int = 32, box: float = 100.0) -> MockSpectrum:
    """A power-law spectrum with a cut-off, plus the shot noise a Poisson sampling adds."""
    k = np.linspace(0.01, 2.0, 200)
    target = MockSpectrum(k, amplitude * (k / 0.1) ** -1.5 * np.exp(-k**2), mean_count, grid, box)
    return dataclasses.replace(target, power=target.power + target.shot_noise)


def test_lognormal_mock_reproduces_target_spectrum_and_mean():
    target = smooth_target(200.0)
    mocks = lognormal_mocks(target, 8, seed=3)
    measured = power_spectrum(mocks, target.box_size, bins="linear")
    frac = measured.power.mean(axis=0) / np.interp(measured.k, target.k, target.power) - 1
    assert np.median(np.abs(frac)) < 0.05
    assert abs(mocks.mean() / target.mean_count - 1) < 0.01
    assert np.all(mocks >= 0) and np.all(mocks == np.round(mocks))  # Poisson counts


def test_gaussian_spectrum_tends_to_the_target_for_weak_fields():
    # ln(1 + xi) ~ xi: a weak field's Gaussian spectrum is the target's clustering part.
    target = smooth_target(0.5, grid=16)
    from nbgan_app.study.mock import mode_k

    k = mode_k(16, target.box_size, 3)
    expected = np.interp(k, target.k, target.power - target.shot_noise)
    expected.flat[0] = 0
    assert np.allclose(gaussian_spectrum(target), expected, rtol=0.02, atol=1e-3 * expected.max())


def test_mock_of_simulated_cubes_has_their_mean_and_spread(tiny_cubes):
    target = measure_spectrum(tiny_cubes, 64.0)
    mocks = lognormal_mocks(target, 6, seed=0)
    assert mocks.shape == (6,) + tiny_cubes.shape[1:]
    assert abs(mocks.mean() / tiny_cubes.mean() - 1) < 0.02
    # far more than Poisson spread about a uniform mean: the field is clustered
    assert mocks.var() > 1.5 * mocks.mean()


def test_study_toml_holds_the_defaults():
    assert load_study(ROOT / "configs" / "study.toml") == StudyConfig()


def test_model_specs_give_mu_the_chain_budget(tiny_config):
    study = StudyConfig(minutes_per_model=2.0, max_steps=10, architectures=("dcgan", "inception_residual"))
    specs = {s.name: s for s in budgets.model_specs(tiny_config, study)}
    assert set(specs) == {"m3", "m2", "m1-inception_residual", "mu", "m1-dcgan"}
    assert specs["mu"].minutes == 6.0 and specs["mu"].max_steps == 30
    assert specs["m1-dcgan"].config.m1.architecture == "dcgan"
    assert specs["m3"].config.train.steps == 10


def test_spent_wall_clock_budget_stops_after_one_step_and_is_recorded(tiny_config, tiny_cubes, tmp_path):
    """A budget that runs out during start-up still buys one step; the model stops there with a
    checkpoint, the study goes on (no KeyboardInterrupt), and the ledger records the stop."""
    from nbgan_app import checkpoints

    study = StudyConfig(minutes_per_model=1e-6, max_steps=4)
    spec = budgets.ModelSpec("m3", "3", budgets.study_config(tiny_config, study), study.minutes_per_model,
                             study.max_steps)
    entry = budgets.train_model(spec, tmp_path, progress=False)
    assert entry["state"] == "stopped" and entry["steps"] == 1
    assert checkpoints.latest_checkpoint(tmp_path / "m3")[0] == 1
    assert budgets.read_ledger(tmp_path)["m3"] == entry


def _tiny_study_inputs(tmp_path: Path, tiny_config, tiny_runs) -> tuple[Path, Path, Path]:
    """A tiny config file on the session's data, study settings, and an output dir whose
    runs (the session's tiny runs) the ledger marks as trained, so nothing trains again."""
    configs = tmp_path / "configs"
    configs.mkdir()
    text = (ROOT / "configs" / "tiny.toml").read_text()
    config_path = configs / "tiny.toml"
    config_path.write_text(text.replace('cache = "data/tiny-sim"', f'cache = "{tiny_config.data.simulation.cache}"'))
    study_path = tmp_path / "study.toml"
    study_path.write_text(TINY_STUDY)
    out = tmp_path / "out"
    ledger = {}
    for spec in budgets.model_specs(tiny_config, load_study(study_path)):
        shutil.copytree(tiny_runs[spec.scale], out / "runs" / spec.name)
        ledger[spec.name] = {"scale": spec.scale, "architecture": spec.config.model(spec.scale).architecture,
                             "minutes": spec.minutes, "max_steps": spec.max_steps, "seconds": 1.0, "steps": 2,
                             "state": "finished"}
    (out / "runs" / budgets.LEDGER).write_text(json.dumps(ledger))
    return config_path, study_path, out


def test_evaluate_writes_every_section(tmp_path, tiny_config, tiny_runs):
    config_path, study_path, out = _tiny_study_inputs(tmp_path, tiny_config, tiny_runs)
    args = ["evaluate", "--config", str(config_path), "--study", str(study_path), "--out", str(out), "--quiet"]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    for heading in ("## Budget and cost", "## How the cubes were split", "## 1. Multi-scale chain",
                    "## 2. Architectures", "## 3. Baselines", "## 4. Conditional up-scaling",
                    "## Running the study at the paper scale on a GPU"):
        assert heading in report
    for label in ("M3 -> M2 -> M1", "Mu (uni-scale)", "I2 -> M1 (inception_residual)", "I3 -> M2 -> M1",
                  "lognormal mock", "PM simulation", "real vs real (1 sigma)"):
        assert label in report
    results = json.loads((out / "results.json").read_text())
    names = {r["name"] for r in results["rows"]}
    assert names == {"chain", "mu", "m1-inception_residual", "m2", "m2-m1", "lognormal", "pm"}
    for r in results["rows"]:
        psd = r["scores"]["psd"]
        assert r["scores"]["n_real"] == 4 and len(psd["frac_diff"]) == len(psd["k"])
        assert psd["floor"]["score"]["mean"] is not None
    assert {r["side"] for r in results["rows"]} == {16, 8}  # I1, and I2 for M2's up-scaling
    assert results["split"]["n_eval"] == 4 and results["split"]["pm"]["per_cube_s"] > 0
    for png in ["quality_vs_time.png", "section1_psd_error.png", "compare_chain.png"]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(t["seconds"] == 1.0 for t in results["training"].values())  # the ledger's runs, reused
    assert main(args) == 2  # the report exists: no silent overwrite


@pytest.mark.parametrize("extra, message", [
    (["--budget-minutes", "0"], "--budget-minutes"),
    (["--max-steps", "-3"], "--max-steps"),
    (["--study", "missing.toml"], "missing.toml"),
])
def test_evaluate_bad_input_exits_2(tmp_path, capsys, extra, message):
    code = main(["evaluate", "--config", str(ROOT / "configs" / "tiny.toml"), "--out", str(tmp_path / "o")] + extra)
    assert code == 2
    assert message in capsys.readouterr().err


def test_study_settings_are_strict(tmp_path, capsys):
    bad = tmp_path / "study.toml"
    bad.write_text("[study]\nbudget = 3\n")
    code = main(["evaluate", "--config", str(ROOT / "configs" / "tiny.toml"), "--out", str(tmp_path / "o"),
                 "--study", str(bad)])
    assert code == 2
    assert "study.budget" in capsys.readouterr().err
    bad.write_text('[study]\narchitectures = ["resnet"]\n')
    assert main(["evaluate", "--config", str(ROOT / "configs" / "tiny.toml"), "--out", str(tmp_path / "o"),
                 "--study", str(bad)]) == 2
    assert not (tmp_path / "o").exists()


def test_lognormal_mock_of_cubes_matches_their_shape_and_mean():
    from nbgan_app.study.mock import lognormal_mock

    real = lognormal_mocks(smooth_target(200.0, grid=16), 4, seed=1)
    fake = lognormal_mock(real, 3, 100.0, seed=2)
    assert fake.shape == (3, 16, 16, 16)
    assert abs(fake.mean() / real.mean() - 1) < 0.02


@pytest.mark.backends
def test_train_model_stops_at_the_wall_clock_budget_and_is_reused(tmp_path, tiny_config):
    study = StudyConfig(minutes_per_model=0.05, max_steps=100_000)
    spec = next(s for s in budgets.model_specs(tiny_config, study) if s.name == "m3")
    entry = budgets.train_model(spec, tmp_path, progress=False)
    assert entry["state"] == "stopped" and 0 < entry["steps"] < 100_000
    assert budgets.read_ledger(tmp_path)["m3"] == entry
    assert budgets.train_model(spec, tmp_path, progress=False) == entry  # the ledger: not trained again
