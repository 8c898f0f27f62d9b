"""A run's sampling-time latent scale: drawn where sampling draws, kept per generator, chosen by `nbgan latent-scale`.

The chains are copies of conftest's tiny runs (2 steps each on real jaxpm cubes), since a test writes
latent_scale.json into them. Sampling is NumPy around the generators' inference calls: default backend only.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from nbgan_app.cli import main
from nbgan_app.errors import InputError
from nbgan_app.latent_scale import FILE, scale_for, write_choice
from nbgan_app.sampling import noise
from nbgan_app.sampling.levels import ArrayLevels, LevelPlan, make_level
from nbgan_app.sampling.runs import checkpoint_of, load_run
from nbgan_app.sampling.sampler import PatchSampler
from nbgan_app.sampling.writer import DatasetSpec


@pytest.fixture
def runs(tiny_runs, tmp_path):
    """Copies of the tiny runs of scales 3, 2, 1: {"3": path, ...}, with a simulation cache of their own, so
    that the validation boxes the command simulates (`<cache>-eval`) stay out of the session's cache."""
    out = {}
    for scale in ("3", "2", "1"):
        out[scale] = tmp_path / f"run-{scale}"
        shutil.copytree(tiny_runs[scale], out[scale])
        saved = json.loads((out[scale] / "config.json").read_text())
        saved["config"]["data"]["simulation"]["cache"] = str(tmp_path / "sim")
        (out[scale] / "config.json").write_text(json.dumps(saved))
    return out


def chain(runs) -> str:
    return ",".join(str(runs[s]) for s in ("3", "2", "1"))


def sampled_step(path) -> int:
    return checkpoint_of(load_run(path))[0]


def test_a_patch_level_draws_its_latent_at_its_scale():
    # a generator that returns its latent channel shows exactly what the sampler drew
    levels = ArrayLevels([DatasetSpec("data", 8, 4, 3)], 2)
    target = levels.target("data")
    sampler = PatchSampler(lambda x: x[..., :1], seed=5, level=1, latent_scale=2.5)
    sampler.sample(target, 2)
    made = levels.dataset("data")
    for cube in range(2):
        for index in np.ndindex(2, 2, 2):
            drawn = made[cube][tuple(slice(4 * i, 4 * i + 4) for i in index)]
            np.testing.assert_array_equal(drawn, 2.5 * noise.patch_latent(5, 1, cube, index, 4)[..., 0])


def test_a_whole_cube_level_draws_its_latent_at_its_scale():
    levels = ArrayLevels([DatasetSpec("data", 4, 4, 3)], 3)
    plan = LevelPlan(3, 4, 4, None, 8, None, name="data", latent_scale=0.5)

    def generator(latent):  # the latent's first number, everywhere in the cube
        return np.broadcast_to(latent[:, :1, None, None, None], (len(latent), 4, 4, 4, 1)).copy()

    make_level(plan, generator, levels.target("data"), 3, seed=9)
    for cube in range(3):
        assert np.all(levels.dataset("data")[cube] == np.float32(0.5) * noise.cube_latent(9, 3, cube, 8)[0])


def test_a_choice_holds_for_its_generator_only(runs):
    step = sampled_step(runs["1"])
    assert scale_for(runs["1"], step) == 1.0  # no choice: the latent as trained
    write_choice(runs["1"], {"step": step, "latent_scale": 1.25})
    assert scale_for(runs["1"], step) == 1.25
    assert scale_for(runs["1"], step + 1) == 1.0  # a later best generator was not tuned
    (runs["1"] / FILE).write_text('{"step": 2, "latent_scale": ')
    with pytest.raises(InputError, match="latent_scale.json is damaged"):
        scale_for(runs["1"], step)
    (runs["1"] / FILE).write_text(json.dumps({"step": step, "latent_scale": -1}))
    with pytest.raises(InputError, match="must be a number > 0"):
        scale_for(runs["1"], step)


def test_sampling_uses_the_choice_records_it_and_the_study_agrees(runs, tmp_path, capsys):
    from nbgan_app.study.generate import load_step, run_steps

    args = ["sample", "--chain", chain(runs), "--n", "2", "--seed", "3", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "plain.h5")]) == 0
    write_choice(runs["1"], {"step": sampled_step(runs["1"]), "latent_scale": 3.0})
    assert main(args + ["--out", str(tmp_path / "scaled.h5")]) == 0
    with h5py.File(tmp_path / "plain.h5") as plain, h5py.File(tmp_path / "scaled.h5") as scaled:
        assert json.loads(plain.attrs["latent_scales"]) == [1.0, 1.0, 1.0]
        assert json.loads(scaled.attrs["latent_scales"]) == [1.0, 1.0, 3.0]
        # the coarser levels are the same draws; the last differs
        for level in ("3", "2"):
            np.testing.assert_array_equal(plain["levels"][level][()], scaled["levels"][level][()])
        assert not np.array_equal(plain["data"][()], scaled["data"][()])
        data = scaled["data"][()]
    # the study's cubes are the ones `nbgan sample` writes, scale included
    counts, _ = run_steps([load_step(runs[s]) for s in ("3", "2", "1")], 2, 3)
    np.testing.assert_array_equal(counts, data)
    # a resume must not mix two scales in one file
    write_choice(runs["1"], {"step": sampled_step(runs["1"]), "latent_scale": 2.0})
    with h5py.File(tmp_path / "scaled.h5", "r+") as f:
        f.attrs["complete"] = False
    assert main(args + ["--out", str(tmp_path / "scaled.h5"), "--resume"]) == 2
    assert "the runs' latent scales (latent_scale.json) [1.0, 1.0, 3.0], not [1.0, 1.0, 2.0]" in capsys.readouterr().err
    # a file from before latent scales were recorded sampled every latent as trained: it resumes at 1 only
    with h5py.File(tmp_path / "plain.h5", "r+") as f:
        f.attrs["complete"] = False
        del f.attrs["latent_scales"]
    assert main(args + ["--out", str(tmp_path / "plain.h5"), "--resume"]) == 2
    assert "latent scales (latent_scale.json) [1.0, 1.0, 1.0], not [1.0, 1.0, 2.0]" in capsys.readouterr().err
    (runs["1"] / FILE).unlink()
    assert main(args + ["--out", str(tmp_path / "plain.h5"), "--resume"]) == 0
    with h5py.File(tmp_path / "plain.h5") as f:
        assert f.attrs["complete"]
        np.testing.assert_array_equal(f["data"][()], run_steps([load_step(runs[s]) for s in ("3", "2", "1")], 2, 3)[0])


def test_upscaling_uses_the_up_scalers_choice(runs, tiny_cubes, tmp_path):
    from nbgan_app.cubes import write_cube

    low = tmp_path / "low.h5"
    write_cube(low, tiny_cubes[:2, ::2, ::2, ::2] * 8, 64.0)  # 8^3 cubes of the runs' 64 Mpc/h boxes
    args = ["upscale", "--run", str(runs["1"]), "--input", str(low), "--seed", "2", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "plain.h5")]) == 0
    write_choice(runs["1"], {"step": sampled_step(runs["1"]), "latent_scale": 0.5})
    assert main(args + ["--out", str(tmp_path / "scaled.h5")]) == 0
    with h5py.File(tmp_path / "plain.h5") as plain, h5py.File(tmp_path / "scaled.h5") as scaled:
        assert json.loads(plain.attrs["latent_scales"]) == [1.0]
        assert json.loads(scaled.attrs["latent_scales"]) == [0.5]
        assert not np.array_equal(plain["data"][()], scaled["data"][()])


def test_the_command_chooses_on_validation_boxes_and_keeps_the_choice(runs, capsys):
    args = ["latent-scale", "--chain", chain(runs), "--scale", "3", "--values", "0.25,1,4",
            "--seeds", "1,2", "--boxes", "4", "--n", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    record = json.loads((runs["3"] / FILE).read_text())
    assert record["step"] == sampled_step(runs["3"])
    assert record["sampling_seeds"] == [1, 2] and "seeds 10..13" in record["chosen_on"]  # after the 3 boxes
    assert len(list((runs["3"].parent / "sim-eval").glob("*.h5"))) == 4  # simulated into the runs' own cache
    table = record["table"]
    assert [row["latent_scale"] for row in table] == [0.25, 1.0, 4.0]
    for row in table:
        for name in ("psd", "mass_hist", "peak_hist"):
            assert row[name] == pytest.approx(np.median([row["by_seed"][s][name] for s in ("1", "2")]))
        assert row["error"] == pytest.approx(np.mean([row["psd"], row["mass_hist"], row["peak_hist"]]))
        assert row["by_seed"]["1"] != row["by_seed"]["2"]
    best = min(table, key=lambda r: r["error"])
    assert record["latent_scale"] == best["latent_scale"]
    assert f"chose latent scale {best['latent_scale']:g}" in out and "| latent scale |" in out
    assert len(set(row["psd"] for row in table)) == 3  # each candidate sampled its own cubes
    # a second choice for the same generator needs --overwrite, and loses nothing without it
    before = (runs["3"] / FILE).read_text()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (runs["3"] / FILE).read_text() == before


@pytest.mark.parametrize("flags, message", [
    (["--scale", "3", "--values", "0,1"], "--values: a latent scale must be a number > 0"),
    (["--scale", "3", "--values", "1,1"], "--values: expected distinct"),
    (["--scale", "3", "--seeds", "a"], "--seeds: expected distinct"),
    (["--scale", "3", "--boxes", "2"], "--boxes: expected a whole number >= 4"),
    (["--scale", "uni"], "--scale uni: the chain has no run of that scale"),
])
def test_bad_flags_are_refused_before_anything_is_sampled(runs, capsys, flags, message):
    assert main(["latent-scale", "--chain", chain(runs)] + flags) == 2
    assert message in capsys.readouterr().err
    assert not (runs["3"] / FILE).exists()
