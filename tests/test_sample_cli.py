"""`nbgan sample` and `nbgan upscale` end to end on tiny run directories, and their bad-input exits."""

from __future__ import annotations

import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from nbgan_app.cli import main


def make_run(root, name, scale, config, checkpoint=True):
    """A run directory in the training helper's format with an untrained generator as its checkpoint."""
    from nbgan_app.config import to_dict
    from nbgan_app.models.factory import build_generator

    run = root / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": to_dict(config), "run": {"scale": scale}}))
    if checkpoint:
        step = run / "checkpoints" / "step-00000002"
        step.mkdir(parents=True)
        build_generator(config.model(scale), scale, config).save(step / "generator.keras")
    return str(run)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("runs")
    out = {s: make_run(root, f"run{s}", s, tiny_config) for s in ("3", "2", "1", "uni")}
    out["bare"] = make_run(root, "bare", "1", tiny_config, checkpoint=False)
    other = dataclasses.replace(tiny_config, transform=dataclasses.replace(tiny_config.transform, c=50.0))
    out["other_transform"] = make_run(root, "other", "1", other)
    return out


def read(path):
    with h5py.File(path, "r") as f:
        return f["data"][()], dict(f.attrs), sorted(f.get("levels", {}).keys())


@pytest.mark.backends
def test_chain_samples_end_to_end_and_orders_agree(runs, tmp_path, capsys):
    chain = ",".join(runs[s] for s in ("3", "2", "1"))
    assert main(["sample", "--chain", chain, "--n", "2", "--out", str(tmp_path / "w.h5"), "--seed", "3"]) == 0
    err = capsys.readouterr().err
    assert "wave 1/1 level 3" in err and "wave 4/4 level 2" in err and "wave 10/10 level 1" in err
    data, attrs, levels = read(tmp_path / "w.h5")
    assert data.shape == (2, 16, 16, 16) and np.all(np.isfinite(data)) and np.all(data >= 0)
    assert bool(attrs["complete"]) and attrs["seed"] == 3 and levels == ["2", "3"]
    assert attrs["box_size"] == pytest.approx(64.0)
    assert main(["sample", "--chain", chain, "--n", "2", "--out", str(tmp_path / "r.h5"), "--seed", "3",
                 "--order", "raster", "--quiet"]) == 0
    np.testing.assert_allclose(read(tmp_path / "r.h5")[0], data, rtol=1e-4, atol=1e-4)
    assert main(["sample", "--chain", chain, "--n", "2", "--out", str(tmp_path / "w.h5"), "--seed", "3",
                 "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_uni_scale_head_reaches_larger_sizes(runs, tmp_path):
    chain = ",".join(runs[s] for s in ("uni", "2", "1"))
    assert main(["sample", "--chain", chain, "--n", "1", "--size", "32", "--out", str(tmp_path / "big.h5"),
                 "--quiet"]) == 0
    data, attrs, levels = read(tmp_path / "big.h5")
    assert data.shape == (1, 32, 32, 32) and levels == ["2", "3"]
    assert attrs["box_size"] == pytest.approx(128.0)  # twice the trained box at twice the side


def test_upscale_given_and_down_scaled_cubes(runs, tmp_path, tiny_config):
    from nbgan_app.cubes import write_cube

    rng = np.random.default_rng(0)
    write_cube(tmp_path / "low.h5", rng.poisson(3.0, (2, 8, 8, 8)).astype(np.float32))
    write_cube(tmp_path / "fine.h5", rng.poisson(3.0, (3, 16, 16, 16)).astype(np.float32))
    assert main(["upscale", "--run", runs["1"], "--input", str(tmp_path / "low.h5"),
                 "--out", str(tmp_path / "up.h5"), "--quiet"]) == 0
    data, attrs, levels = read(tmp_path / "up.h5")
    assert data.shape == (2, 16, 16, 16) and bool(attrs["complete"]) and levels == ["2"]
    with h5py.File(tmp_path / "up.h5", "r") as f:  # the given input is kept, transformed
        from nbgan_app.transforms import forward

        with h5py.File(tmp_path / "low.h5", "r") as low:
            np.testing.assert_allclose(f["levels/2"][()], forward(low["data"][()], tiny_config.transform))
    assert main(["upscale", "--run", runs["1"], "--input", str(tmp_path / "fine.h5"), "--from-fine",
                 "--out", str(tmp_path / "up2.h5"), "--quiet"]) == 0
    assert read(tmp_path / "up2.h5")[0].shape == (3, 16, 16, 16)
    assert main(["upscale", "--run", runs["3"], "--input", str(tmp_path / "low.h5"),
                 "--out", str(tmp_path / "bad.h5")]) == 2


def bad(args, capsys, match):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1, err


def test_bad_input_exits_2_and_overwrites_nothing(runs, tmp_path, capsys):
    chain = ",".join(runs[s] for s in ("3", "2", "1"))
    out = tmp_path / "out.h5"
    base = ["sample", "--n", "1", "--out", str(out), "--quiet"]
    bad(base + ["--chain", ",".join([runs["3"], runs["2"], runs["bare"]])], capsys, "no checkpoint")
    bad(base + ["--chain", ",".join([runs["3"], runs["2"], runs["other_transform"]])], capsys,
        "different transforms")
    bad(base + ["--chain", chain, "--size", "24"], capsys, "whole cubes of side 4")
    bad(base + ["--chain", ",".join([runs["uni"], runs["1"]]), "--size", "18"], capsys, "not a multiple")
    bad(base + ["--chain", str(tmp_path)], capsys, "not a run directory")
    bad(["sample", "--n", "0", "--out", str(out), "--chain", chain], capsys, "--n")
    bad(base + ["--chain", chain, "--resume"], capsys, "does not exist")
    assert os.listdir(tmp_path) == []
    out.write_bytes(b"precious")
    bad(base + ["--chain", chain], capsys, "already exists")
    assert out.read_bytes() == b"precious"
