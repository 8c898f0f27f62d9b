"""`nbgan stats` and `nbgan compare`: JSON layout, box sizes, exit code 2 on bad input, no partial output."""

import json

import h5py
import numpy as np
import pytest

from nbgan_app.cli import main
from nbgan_app.cubes import write_cube


def write_set(directory, n, sigma=1.0, seed=0, size=12, box_size=64.0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cube = rng.poisson(np.exp(sigma * rng.normal(size=(size,) * 3)) * 6)
        write_cube(directory / f"c{i}.h5", cube, box_size=box_size)
    return directory


def test_stats_json_layout(tmp_path, capsys):
    cubes = write_set(tmp_path / "real", 3)
    out = tmp_path / "s.json"
    assert main(["stats", str(cubes), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result) == ["box_size", "n_cubes", "psd", "mass_hist", "peak_hist"]
    assert result["box_size"] == 64.0 and result["n_cubes"] == 3
    assert list(result["psd"]) == ["k", "mean", "std"]
    assert len(result["psd"]["k"]) == len(result["psd"]["mean"]) == len(result["psd"]["std"])
    for name in ("mass_hist", "peak_hist"):
        assert list(result[name]) == ["edges", "mean", "std"]
        assert len(result[name]["edges"]) == len(result[name]["mean"]) + 1 == 21
    assert sum(result["mass_hist"]["mean"]) == pytest.approx(12**3)


def test_stats_linear_bins_and_box_size_flag(tmp_path):
    cubes = write_set(tmp_path / "real", 2)
    out = tmp_path / "s.json"
    assert main(["stats", str(cubes), "--psd-bins", "linear", "--box-size", "128", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    k_fundamental = 2 * np.pi / 128
    assert result["box_size"] == 128.0
    assert len(result["psd"]["k"]) == int(np.sqrt(3) * 6)
    assert k_fundamental <= result["psd"]["k"][0] < 2 * k_fundamental


def test_stats_missing_box_size_names_the_flag(tmp_path, capsys):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.ones((8, 8, 8))
    out = tmp_path / "s.json"
    assert main(["stats", str(path), "--json", str(out)]) == 2
    assert "--box-size" in capsys.readouterr().err
    assert not out.exists()


def test_stats_refuses_to_overwrite(tmp_path, capsys):
    cubes = write_set(tmp_path / "real", 1)
    out = tmp_path / "s.json"
    out.write_text("{}")
    assert main(["stats", str(cubes), "--json", str(out)]) == 2
    assert out.read_text() == "{}"
    assert main(["stats", str(cubes), "--json", str(out), "--overwrite"]) == 0


def test_compare_writes_scores_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    real = write_set(tmp_path / "real", 4, seed=1)
    fake = write_set(tmp_path / "fake", 2, sigma=1.5, seed=2)
    out, plot = tmp_path / "c.json", tmp_path / "c.png"
    argv = ["compare", "--real", str(real), "--fake", str(fake), "--json", str(out), "--plot", str(plot), "--floor-splits", "3"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["n_real"] == 4 and result["n_fake"] == 2 and result["floor_splits"] == 3
    assert {"score", "log_l2", "frac_diff", "floor"} <= set(result["psd"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "psd" in capsys.readouterr().out


def _nan_file(directory):
    directory.mkdir()
    with h5py.File(directory / "nan.h5", "w") as f:
        f["data"] = np.full((12, 12, 12), np.nan)
        f["data"].attrs["box_size"] = 64.0


@pytest.mark.parametrize("make_fake, extra, message", [
    (lambda d: write_set(d, 2, size=8), [], "grids differ"),
    (lambda d: write_set(d, 2, box_size=100.0), [], "box sizes differ"),
    (lambda d: write_set(d, 1), [], "fake set has 1 cube"),
    (lambda d: d.mkdir(), [], "no cube files"),
    (_nan_file, [], "NaN"),
    (lambda d: write_set(d, 2), ["--floor-splits", "0"], "floor-splits"),
])
def test_compare_bad_input_exits_2_without_output(tmp_path, capsys, make_fake, extra, message):
    real = write_set(tmp_path / "real", 4)
    make_fake(tmp_path / "fake")
    out = tmp_path / "c.json"
    argv = ["compare", "--real", str(real), "--fake", str(tmp_path / "fake"), "--json", str(out), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_compare_box_size_flag_settles_disagreeing_files(tmp_path):
    real = write_set(tmp_path / "real", 4)
    fake = write_set(tmp_path / "fake", 2, box_size=100.0)
    out = tmp_path / "c.json"
    assert main(["compare", "--real", str(real), "--fake", str(fake), "--box-size", "64", "--json", str(out), "--floor-splits", "2"]) == 0
    assert json.loads(out.read_text())["box_size"] == 64.0


@pytest.mark.parametrize("command", ["stats", "compare"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "--json" in capsys.readouterr().out
