"""`nbgan simulate`: a real (tiny) jaxpm particle-mesh run, its cache, and the command line."""

from __future__ import annotations

import dataclasses
import os
import threading

import h5py
import numpy as np
import pytest

from nbgan_app import simulate
from nbgan_app.cli import main
from nbgan_app.config import SimulationConfig
from nbgan_app.cubes import iter_cubes, read_box_size
from nbgan_app.errors import InputError

TINY = SimulationConfig(cache="", boxes=2, particles=16, mesh=16, grid=16, box_size=64.0, steps=4, seed=7)


@pytest.fixture(scope="module")
def box0():
    return simulate.simulate_box(TINY, 0)


def test_box_is_a_clustered_count_cube(box0):
    assert box0.shape == (16, 16, 16) and box0.dtype == np.float32
    assert box0.sum() == 16**3  # every particle binned once
    assert np.all(box0 == np.round(box0)) and box0.min() >= 0
    # Poisson (unclustered) counts have variance / mean = 1; gravity makes it far larger.
    assert box0.var() / box0.mean() > 1.5


def test_same_seed_same_cube_other_seed_other_cube(box0):
    np.testing.assert_array_equal(simulate.simulate_box(TINY, 0), box0)
    assert not np.array_equal(simulate.simulate_box(TINY, 1), box0)
    # box i uses seed + i: box 1 of seed 7 is box 0 of seed 8
    np.testing.assert_array_equal(simulate.simulate_box(dataclasses.replace(TINY, seed=8), 0),
                                  simulate.simulate_box(TINY, 1))


def test_grid_coarser_than_mesh_sums_blocks(box0):
    coarse = simulate.simulate_box(dataclasses.replace(TINY, grid=8), 0)
    np.testing.assert_array_equal(coarse, box0.reshape(8, 2, 8, 2, 8, 2).sum(axis=(1, 3, 5)))


def fake_box(sim, index):
    """A stand-in for the PM run, for the cache tests (the real one is tested above)."""
    return np.full((sim.grid,) * 3, float(index), np.float32)


def test_suite_writes_boxes_with_settings_and_reuses_them(tmp_path, monkeypatch):
    monkeypatch.setattr(simulate, "simulate_box", fake_box)
    paths = simulate.simulate_suite(TINY, tmp_path, progress=False)
    assert [p.name for p in paths] == ["box_000.h5", "box_001.h5"]
    assert read_box_size(paths[1]) == 64.0 and next(iter_cubes(paths[1]))[0, 0, 0] == 1.0
    with h5py.File(paths[1]) as f:
        assert f.attrs["box_seed"] == 8 and f.attrs["steps"] == 4 and f.attrs["sigma8"] == pytest.approx(0.811)

    def fail(sim, index):
        raise AssertionError("a cached box was simulated again")

    monkeypatch.setattr(simulate, "simulate_box", fail)
    assert simulate.simulate_suite(TINY, tmp_path, progress=False) == paths
    with pytest.raises(InputError, match="box_000.h5 was made with steps=4, not 5"):
        simulate.simulate_suite(dataclasses.replace(TINY, steps=5), tmp_path, progress=False)


def test_interrupted_suite_leaves_no_complete_looking_box(tmp_path, monkeypatch):
    def interrupted(sim, index):
        if index == 1:
            raise KeyboardInterrupt
        return fake_box(sim, index)

    monkeypatch.setattr(simulate, "simulate_box", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate.simulate_suite(TINY, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box_000.h5"]  # no box_001, no temporary
    monkeypatch.setattr(simulate, "simulate_box", fake_box)
    assert len(simulate.simulate_suite(TINY, tmp_path, progress=False)) == 2


def test_a_suite_on_threads_writes_the_boxes_one_thread_writes(tmp_path, monkeypatch):
    sim = dataclasses.replace(TINY, boxes=4)
    monkeypatch.setattr(simulate, "suite_threads", lambda sim, boxes: 1)
    one = simulate.simulate_suite(sim, tmp_path / "one", progress=False)
    real, threads = simulate.simulate_box, set()

    def recorded(sim, index):
        threads.add(threading.get_ident())
        return real(sim, index)

    monkeypatch.setattr(simulate, "simulate_box", recorded)
    monkeypatch.setattr(simulate, "suite_threads", lambda sim, boxes: 2)
    two = simulate.simulate_suite(sim, tmp_path / "two", progress=False)
    assert len(threads) == 3  # the first box in the caller's thread (it compiles), then two at a time
    assert [p.name for p in two] == [p.name for p in one]
    for a, b in zip(one, two):
        np.testing.assert_array_equal(next(iter_cubes(b)), next(iter_cubes(a)))


def test_suite_threads_are_the_usable_cores_that_fit_in_memory(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr("nbgan_app.cubes.available_memory", lambda: None)
    assert simulate.suite_threads(TINY, 100) == 8 and simulate.suite_threads(TINY, 3) == 3
    monkeypatch.setattr("nbgan_app.cubes.available_memory", lambda: int(2.5 * simulate._box_bytes(TINY)))
    assert simulate.suite_threads(TINY, 100) == 2
    monkeypatch.setattr("nbgan_app.cubes.available_memory", lambda: 10)
    assert simulate.suite_threads(TINY, 100) == 1
    monkeypatch.setattr("nbgan_app.cubes.available_memory", lambda: None)
    monkeypatch.setattr("jax.default_backend", lambda: "gpu")
    assert simulate.suite_threads(TINY, 100) == 1


def test_cli_runs_a_real_simulation(tmp_path, capsys):
    argv = ["simulate", "--out", str(tmp_path), "--boxes", "1", "--particles", "16", "--grid", "8",
            "--box-size", "64", "--steps", "4", "--seed", "7", "--quiet"]
    assert main(argv) == 0
    assert "variance/mean" in capsys.readouterr().out
    counts = next(iter_cubes(tmp_path / "box_000.h5"))
    assert counts.shape == (8, 8, 8) and counts.sum() == 16**3


@pytest.mark.parametrize("argv, message", [
    (["--boxes", "1"], "give --out DIR"),
    (["--particles", "16", "--mesh", "32"], "simulation.mesh"),
    (["--steps", "0"], "simulation.steps"),
    (["--box-size", "-1"], "simulation.box_size"),
    (["--config", "no-such.toml"], "no such config file"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, argv, message):
    out = ["--out", str(tmp_path / "out")] if argv[0] != "--boxes" else []
    assert main(["simulate", *out, *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_output_that_is_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["simulate", "--out", str(tmp_path / "file"), "--boxes", "1", "--quiet"]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--box-size=inf"], "simulation.box_size: expected a positive, finite"),
    (["--box-size=1e300"], "simulation.box_size: box side 1e+300 Mpc/h is larger"),
    (["--grid", "100000"], "100000^3 grid needs 16 PB, more than"),
    (["--particles", "20000"], "20000^3 particles on a 20000^3 mesh"),
])
def test_cli_impossible_settings_exit_2_before_any_work(tmp_path, capsys, argv, message):
    assert main(["simulate", "--out", str(tmp_path / "out"), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_out_in_a_missing_directory_makes_no_directories(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "typo" / "out"), "--boxes", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"parent directory {tmp_path / 'typo'} does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "typo").exists()


def test_a_config_cache_makes_its_parents(tmp_path, monkeypatch):
    """The config's cache is a layout nbgan owns (data/<name>-sim): its parents are made."""
    monkeypatch.setattr(simulate, "simulate_box", fake_box)
    paths = simulate.simulate_suite(TINY, tmp_path / "data" / "tiny-sim", progress=False)
    assert [p.parent for p in paths] == [tmp_path / "data" / "tiny-sim"] * 2
    with pytest.raises(InputError, match="does not exist"):
        simulate.simulate_suite(TINY, tmp_path / "typo" / "out", progress=False, parents=False)
    assert not (tmp_path / "typo").exists()
