"""`nbgan stats` and `nbgan compare`: JSON layout, box sizes, exit code 2 on bad input, no partial output."""

import json
import shutil

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


def run_cli(argv):
    """Exit code of the real CLI, in-process (argparse errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def one_error_line(err):
    """The single error line on stderr; argparse's usage lines before it are not counted."""
    lines = [line for line in err.strip().splitlines() if line and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(directory):
    """Every file under `directory` with its bytes: to assert that nothing was written or changed."""
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(directory.rglob("*"))}


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan", "1e300", "1e-300"])
def test_stats_box_size_flag_must_be_a_finite_side(tmp_path, capsys, value):
    cubes = write_set(tmp_path / "real", 2)
    before = snapshot(tmp_path)
    assert run_cli(["stats", str(cubes), f"--box-size={value}", "--json", str(tmp_path / "s.json")]) == 2
    assert "--box-size" in one_error_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e300])
def test_stats_box_size_attribute_must_be_a_finite_side(tmp_path, capsys, value):
    path = tmp_path / "c.h5"
    write_cube(path, np.random.default_rng(0).poisson(5, (8, 8, 8)), box_size=value)
    assert main(["stats", str(path), "--json", str(tmp_path / "s.json")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and "box_size" in line
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("command", ["stats", "compare-json", "compare-plot"])
def test_output_that_is_a_directory_is_refused_before_any_work(tmp_path, capsys, command):
    real = write_set(tmp_path / "real", 4)
    fake = write_set(tmp_path / "fake", 2, seed=3)
    target = tmp_path / "target"
    target.mkdir()
    other = tmp_path / "c.json"
    argv = {"stats": ["stats", str(real), "--json", str(target)],
            "compare-json": ["compare", "--real", str(real), "--fake", str(fake), "--json", str(target)],
            "compare-plot": ["compare", "--real", str(real), "--fake", str(fake), "--json", str(other),
                             "--plot", str(target)]}[command]
    before = snapshot(tmp_path)
    assert main([*argv, "--overwrite"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"output {target} is a directory" in line
    assert snapshot(tmp_path) == before


def test_output_in_a_missing_directory_is_refused_and_not_made(tmp_path, capsys):
    real = write_set(tmp_path / "real", 2)
    out = tmp_path / "typo" / "s.json"
    assert main(["stats", str(real), "--json", str(out)]) == 2
    assert f"directory {tmp_path / 'typo'} does not exist" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "typo").exists()


def test_stats_names_the_file_of_an_all_zero_cube(tmp_path, capsys):
    real = write_set(tmp_path / "real", 2)
    write_cube(real / "zero.h5", np.zeros((12, 12, 12)), box_size=64.0)
    batch = np.random.default_rng(1).poisson(5, (3, 12, 12, 12)).astype(np.float32)
    batch[2] = 0
    write_cube(tmp_path / "batch.h5", batch, box_size=64.0)
    assert main(["stats", str(real), "--json", str(tmp_path / "s.json")]) == 2
    assert f"{real / 'zero.h5'} holds no particles" in one_error_line(capsys.readouterr().err)
    assert main(["stats", str(tmp_path / "batch.h5"), "--json", str(tmp_path / "s.json")]) == 2
    assert f"{tmp_path / 'batch.h5'}[2] holds no particles" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s.json").exists()


def test_stats_refuses_a_file_given_twice_and_an_output_that_is_an_input(tmp_path, capsys):
    real = write_set(tmp_path / "real", 2)
    (tmp_path / "link.h5").symlink_to(real / "c0.h5")
    out = tmp_path / "s.json"
    for inputs in ([real, real / "c0.h5"], [real / "c0.h5", tmp_path / "link.h5"], [real / "c1.h5"] * 2):
        assert main(["stats", *map(str, inputs), "--json", str(out)]) == 2
        assert "give each file once" in one_error_line(capsys.readouterr().err)
    before = snapshot(tmp_path)
    assert main(["stats", str(real), "--json", str(tmp_path / "link.h5"), "--overwrite"]) == 2
    assert "is also an input" in one_error_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


def compare_argv(real, fake, out, *extra):
    return ["compare", "--real", *map(str, real), "--fake", *map(str, fake), "--json", str(out),
            "--floor-splits", "2", *extra]


def test_compare_refuses_duplicate_real_inputs(tmp_path, capsys):
    """Issue 12 #6: the same real file four times made a floor of 0 between identical halves."""
    real = write_set(tmp_path / "real", 4)
    fake = write_set(tmp_path / "fake", 2, seed=5)
    c0 = real / "c0.h5"
    (tmp_path / "link.h5").symlink_to(c0)
    out = tmp_path / "c.json"
    for real_args in ([c0] * 4, [c0, tmp_path / "real" / ".." / "real" / "c0.h5", real / "c1.h5", real / "c2.h5"],
                      [real, tmp_path / "link.h5"]):
        assert main(compare_argv(real_args, [fake], out)) == 2
        assert "give each file once" in one_error_line(capsys.readouterr().err)
    assert main(compare_argv([real], [fake, real / "c3.h5"], out)) == 2
    assert "given both in --fake and in --real" in one_error_line(capsys.readouterr().err)
    assert main(compare_argv([real], [tmp_path / "link.h5", fake / "c0.h5"], out)) == 2
    assert f"(as {c0}) in --real" in one_error_line(capsys.readouterr().err)
    shutil.copy(c0, real / "copy.h5")  # another file, the same cube
    assert main(compare_argv([real], [fake], out)) == 2
    assert f"{real / 'copy.h5'} is identical to {c0}" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_compare_refuses_one_path_for_json_and_plot(tmp_path, capsys):
    real = write_set(tmp_path / "real", 4)
    fake = write_set(tmp_path / "fake", 2, seed=5)
    out = tmp_path / "c.json"
    assert main(compare_argv([real], [fake], out, "--plot", str(out))) == 2
    assert "the same file" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_stats_of_2d_slices_are_in_mpc_h_squared(tmp_path, capsys):
    """Issue 12 #12, decided: 2-D fields are supported; P(k) in (Mpc/h)^2 and k from the slice side."""
    rng = np.random.default_rng(4)
    slices = rng.poisson(np.exp(rng.normal(size=(3, 16, 16))) * 6).astype(np.float32)
    write_cube(tmp_path / "slices.h5", slices)
    results = {}
    for side in (32.0, 64.0):
        out = tmp_path / f"s{side:g}.json"
        assert main(["stats", str(tmp_path / "slices.h5"), "--box-size", f"{side:g}", "--psd-bins", "linear",
                     "--json", str(out)]) == 0
        assert "2-D slice(s), P(k) in (Mpc/h)^2" in capsys.readouterr().out
        results[side] = json.loads(out.read_text())
    k32, k64 = (np.array(results[s]["psd"]["k"]) for s in (32.0, 64.0))
    p32, p64 = (np.array(results[s]["psd"]["mean"]) for s in (32.0, 64.0))
    np.testing.assert_allclose(k32[0], 2 * np.pi / 32.0, rtol=0.5)
    np.testing.assert_allclose(k64, k32 / 2)  # k_F = 2 pi / L
    np.testing.assert_allclose(p64, p32 * 4)  # V = L^2: a 2-D spectrum
    assert results[64.0]["mass_hist"]["mean"] == results[32.0]["mass_hist"]["mean"]
    assert sum(results[64.0]["mass_hist"]["mean"]) == pytest.approx(16**2)  # pixels, not voxels


def test_compare_names_an_all_zero_cube(tmp_path, capsys):
    real = write_set(tmp_path / "real", 4)
    fake = write_set(tmp_path / "fake", 2, seed=5)
    write_cube(fake / "zero.h5", np.zeros((12, 12, 12)), box_size=64.0)
    out = tmp_path / "c.json"
    assert main(compare_argv([real], [fake], out)) == 2
    assert f"{fake / 'zero.h5'} holds no particles" in one_error_line(capsys.readouterr().err)
    assert not out.exists()
