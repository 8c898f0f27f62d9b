"""`nbgan ingest`: Gadget HDF5 (single and split) and .npy snapshots to count cubes; bad input."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest

from nbgan_app.cli import main
from nbgan_app.cubes import iter_cubes, read_box_size
from nbgan_app.errors import InputError
from nbgan_app.ingest import ingest

BOX = 50.0
GRID = 8


def write_gadget(path, coordinates, box=BOX, num_files=1):
    """A minimal Gadget-format HDF5 snapshot file."""
    with h5py.File(path, "w") as f:
        header = f.create_group("Header")
        header.attrs["BoxSize"] = box
        header.attrs["NumFilesPerSnapshot"] = num_files
        header.attrs["NumPart_ThisFile"] = np.array([0, len(coordinates), 0, 0, 0, 0])
        f.create_dataset("PartType1/Coordinates", data=coordinates)


@pytest.fixture
def particles():
    return (np.random.default_rng(0).random((3000, 3)) * BOX).astype(np.float32)


def reference(positions, box=BOX):
    return np.histogramdd(positions, bins=GRID, range=[(0, box)] * 3)[0]


def cube(path):
    return next(iter_cubes(path))


def test_split_gadget_snapshot_equals_single_file(tmp_path, particles):
    write_gadget(tmp_path / "whole.hdf5", particles)
    for i, part in enumerate(np.array_split(particles, 3)):
        write_gadget(tmp_path / f"snap_005.{i}.hdf5", part, num_files=3)
    parts = [tmp_path / f"snap_005.{i}.hdf5" for i in (2, 0, 1)]  # order given does not matter
    outputs = ingest([tmp_path / "whole.hdf5", *parts], GRID, tmp_path / "out", chunk=700)
    assert [p.name for p in outputs] == ["whole.h5", "snap_005.h5"]
    np.testing.assert_array_equal(cube(outputs[0]), reference(particles))
    np.testing.assert_array_equal(cube(outputs[1]), cube(outputs[0]))
    assert read_box_size(outputs[1]) == BOX


def test_missing_part_of_a_split_snapshot_is_an_error(tmp_path, particles):
    for i, part in enumerate(np.array_split(particles, 2)):
        write_gadget(tmp_path / f"snap.{i}.hdf5", part, num_files=2)
    with pytest.raises(InputError, match="split over 2 files; 1 given"):
        ingest([tmp_path / "snap.0.hdf5"], GRID, tmp_path / "out")


def test_box_size_flag_sets_the_attribute_of_a_kpc_snapshot(tmp_path, particles):
    write_gadget(tmp_path / "snap.hdf5", particles * 1000, box=BOX * 1000)  # kpc/h
    (out,) = ingest([tmp_path / "snap.hdf5"], GRID, tmp_path / "out", box_size=BOX)
    np.testing.assert_array_equal(cube(out), reference(particles * 1000, BOX * 1000))
    assert read_box_size(out) == BOX


def test_npy_streams_in_chunks(tmp_path, particles):
    np.save(tmp_path / "p.npy", particles.astype(np.float64))
    np.save(tmp_path / "f.npy", np.asfortranarray(particles))
    code = main(["ingest", str(tmp_path / "p.npy"), str(tmp_path / "f.npy"), "--grid", str(GRID),
                 "--out", str(tmp_path / "out"), "--box-size", str(BOX), "--chunk", "999", "--quiet"])
    assert code == 0
    for name in ("p.h5", "f.h5"):
        np.testing.assert_array_equal(cube(tmp_path / "out" / name), reference(particles))


def bad_inputs(tmp_path, particles):
    """(name, argv extra, message) for each kind of bad input."""
    np.save(tmp_path / "flat.npy", particles[:, :2])
    nan = particles.copy()
    nan[5, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "outside.npy", particles * 2)
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with h5py.File(tmp_path / "nokey.hdf5", "w") as f:
        f.create_group("Header").attrs["BoxSize"] = BOX
    np.save(tmp_path / "good.npy", particles)
    return [
        ("missing path", [str(tmp_path / "absent.npy")], "no such file"),
        ("not HDF5", [str(tmp_path / "text.hdf5")], "not a readable HDF5 file"),
        ("missing key", [str(tmp_path / "nokey.hdf5")], "no dataset PartType1/Coordinates"),
        ("wrong shape", [str(tmp_path / "flat.npy"), "--box-size", str(BOX)], r"shape \(3000, 2\)"),
        ("NaN", [str(tmp_path / "nan.npy"), "--box-size", str(BOX)], "nan.npy holds 1 NaN"),
        ("outside", [str(tmp_path / "outside.npy"), "--box-size", str(BOX)], "outside.npy holds .* outside the box"),
        ("no box size", [str(tmp_path / "good.npy")], "pass --box-size"),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, particles, capsys):
    for name, argv, message in bad_inputs(tmp_path, particles):
        out = tmp_path / "out"
        code = main(["ingest", *argv, "--grid", str(GRID), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2, name
        assert len(err.splitlines()) == 1 and re.search(message, err), (name, err)
        assert not out.exists(), name


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_exits_2(tmp_path, particles, capsys):
    np.save(tmp_path / "good.npy", particles)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["ingest", str(tmp_path / "good.npy"), "--grid", "4", "--box-size", str(BOX),
                     "--out", str(locked), "--quiet"])
    finally:
        locked.chmod(0o700)
    assert code == 2 and "not writable" in capsys.readouterr().err
    assert not any(locked.iterdir())


def test_output_dir_that_cannot_be_made_exits_2(tmp_path, particles, capsys):
    np.save(tmp_path / "good.npy", particles)
    (tmp_path / "file").write_text("")
    code = main(["ingest", str(tmp_path / "good.npy"), "--grid", "4", "--box-size", str(BOX),
                 "--out", str(tmp_path / "file" / "out"), "--quiet"])
    assert code == 2 and "cannot create output directory" in capsys.readouterr().err


def test_failure_in_a_late_chunk_leaves_no_cube(tmp_path, particles):
    bad = particles.copy()
    bad[-1] = [BOX * 3, 1, 1]  # only the last chunk is bad: binning has started when it fails
    np.save(tmp_path / "late.npy", bad)
    with pytest.raises(InputError, match="1 particle coordinates outside"):
        ingest([tmp_path / "late.npy"], GRID, tmp_path / "out", box_size=BOX, chunk=100)
    assert not (tmp_path / "out").exists()  # no cube, no temporary, no directory


def test_existing_output_needs_overwrite(tmp_path, particles):
    np.save(tmp_path / "p.npy", particles)
    ingest([tmp_path / "p.npy"], GRID, tmp_path / "out", box_size=BOX)
    with pytest.raises(InputError, match="already exists"):
        ingest([tmp_path / "p.npy"], GRID, tmp_path / "out", box_size=BOX)
    ingest([tmp_path / "p.npy"], 4, tmp_path / "out", box_size=BOX, overwrite=True)
    assert cube(tmp_path / "out" / "p.h5").shape == (4, 4, 4)


def ingest_cli(*argv, grid=GRID):
    return main(["ingest", *map(str, argv), "--grid", str(grid), "--quiet"])


def files_under(directory):
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(directory.rglob("*"))}


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("bad", ["nan", "outside", "empty", "flat", "truncated"])
def test_a_bad_later_input_leaves_no_cube_and_the_fixed_rerun_works(tmp_path, particles, capsys, bad):
    """Issue 12 #9: `ingest ok.npy bad.npy` wrote ok.h5, and the fixed rerun said "already exists"."""
    np.save(tmp_path / "ok.npy", particles)
    broken = {"nan": np.where(np.arange(3000)[:, None] == 2999, np.nan, particles),
              "outside": particles * 3, "empty": particles[:0], "flat": particles[:, :2],
              "truncated": particles}[bad]
    np.save(tmp_path / "bad.npy", broken)
    if bad == "truncated":
        with open(tmp_path / "bad.npy", "r+b") as f:
            f.truncate(os.path.getsize(tmp_path / "bad.npy") - 100)
    out = tmp_path / "out"
    assert ingest_cli(tmp_path / "ok.npy", tmp_path / "bad.npy", "--box-size", BOX, "--out", out,
                      "--chunk", 500) == 2
    assert "bad.npy" in one_line(capsys)
    assert not out.exists()  # no cube, no temporary, no directory
    np.save(tmp_path / "bad.npy", particles[::-1])
    assert ingest_cli(tmp_path / "ok.npy", tmp_path / "bad.npy", "--box-size", BOX, "--out", out) == 0
    np.testing.assert_array_equal(cube(out / "bad.h5"), cube(out / "ok.h5"))


def test_overwrite_replaces_the_old_cubes_only_when_every_snapshot_succeeded(tmp_path, particles, capsys):
    np.save(tmp_path / "a.npy", particles)
    np.save(tmp_path / "b.npy", particles)
    out = tmp_path / "out"
    assert ingest_cli(tmp_path / "a.npy", tmp_path / "b.npy", "--box-size", BOX, "--out", out) == 0
    before = files_under(out)
    np.save(tmp_path / "a.npy", particles[::2])  # a new a.h5 would differ from the old one
    np.save(tmp_path / "b.npy", particles * 2)  # now outside the box
    assert ingest_cli(tmp_path / "a.npy", tmp_path / "b.npy", "--box-size", BOX, "--out", out, "--overwrite") == 2
    assert "b.npy holds" in one_line(capsys)
    assert files_under(out) == before


@pytest.mark.parametrize("kind", ["npy", "gadget", "gadget-no-group", "split-gadget"])
def test_a_snapshot_without_particles_is_refused_naming_it(tmp_path, capsys, kind):
    """Issue 12 #7: 0 particles gave an all-zero cube, exit 0."""
    if kind == "npy":
        np.save(tmp_path / "snap.npy", np.zeros((0, 3), np.float32))
        inputs, extra = [tmp_path / "snap.npy"], ["--box-size", BOX]
    elif kind == "gadget":
        write_gadget(tmp_path / "snap.hdf5", np.zeros((0, 3), np.float32))
        inputs, extra = [tmp_path / "snap.hdf5"], []
    elif kind == "gadget-no-group":
        with h5py.File(tmp_path / "snap.hdf5", "w") as f:
            f.create_group("Header").attrs.update({"BoxSize": BOX, "NumPart_ThisFile": [5, 0, 0, 0, 0, 0]})
        inputs, extra = [tmp_path / "snap.hdf5"], []
    else:
        for i in range(2):
            write_gadget(tmp_path / f"snap.{i}.hdf5", np.zeros((0, 3), np.float32), num_files=2)
        inputs, extra = [tmp_path / "snap.0.hdf5", tmp_path / "snap.1.hdf5"], []
    out = tmp_path / "out"
    assert ingest_cli(*inputs, *extra, "--out", out) == 2
    line = one_line(capsys)
    assert "holds no particles" in line and "snap" in line
    assert not out.exists()


def test_a_directory_as_input_says_so(tmp_path, capsys):
    (tmp_path / "snapshots").mkdir()
    assert ingest_cli(tmp_path / "snapshots", "--out", tmp_path / "out") == 2
    line = one_line(capsys)
    assert f"{tmp_path / 'snapshots'} is a directory; expected snapshot files" in line
    assert "no such file" not in line and not (tmp_path / "out").exists()


def test_a_grid_that_does_not_fit_in_memory_is_refused_before_allocating(tmp_path, particles, capsys, monkeypatch):
    """Issue 12 #8: --grid 100000 tried to allocate 16 PB."""
    np.save(tmp_path / "p.npy", particles)
    out = tmp_path / "out"
    assert ingest_cli(tmp_path / "p.npy", "--box-size", BOX, "--out", out, grid=100000) == 2
    line = one_line(capsys)
    assert "--grid 100000" in line and "needs 16 PB" in line and "memory available" in line
    from nbgan_app import cubes

    monkeypatch.setattr(cubes, "available_memory", lambda: 4096)  # 8^3 cells need 8 kB
    assert ingest_cli(tmp_path / "p.npy", "--box-size", BOX, "--out", out) == 2
    assert f"--grid {GRID}" in one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "0"])
def test_box_size_flag_must_be_a_finite_side(tmp_path, particles, capsys, value):
    np.save(tmp_path / "p.npy", particles)
    assert ingest_cli(tmp_path / "p.npy", f"--box-size={value}", "--out", tmp_path / "out") == 2
    assert "--box-size" in one_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("box, message", [(np.inf, "positive, finite"), (BOX * 1e4, "pass --box-size L")])
def test_gadget_box_size_must_be_finite_and_in_mpc(tmp_path, particles, capsys, box, message):
    write_gadget(tmp_path / "snap.hdf5", particles, box=box)
    assert ingest_cli(tmp_path / "snap.hdf5", "--out", tmp_path / "out") == 2
    line = one_line(capsys)
    assert "snap.hdf5" in line and message in line
    assert not (tmp_path / "out").exists()


def test_outputs_are_checked_and_only_the_output_directory_is_made(tmp_path, particles, capsys):
    np.save(tmp_path / "p.npy", particles)
    assert ingest_cli(tmp_path / "p.npy", "--box-size", BOX, "--out", tmp_path / "typo" / "out") == 2
    assert f"parent directory {tmp_path / 'typo'} does not exist" in one_line(capsys)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "out" / "p.h5").mkdir(parents=True)
    assert ingest_cli(tmp_path / "p.npy", "--box-size", BOX, "--out", tmp_path / "out", "--overwrite") == 2
    assert f"output {tmp_path / 'out' / 'p.h5'} is a directory" in one_line(capsys)
    assert (tmp_path / "out" / "p.h5").is_dir()


def test_one_snapshot_file_given_twice_is_refused(tmp_path, particles, capsys):
    np.save(tmp_path / "p.npy", particles)
    (tmp_path / "q.npy").symlink_to(tmp_path / "p.npy")
    assert ingest_cli(tmp_path / "p.npy", tmp_path / "q.npy", "--box-size", BOX, "--out", tmp_path / "out") == 2
    assert f"q.npy is the same file as {tmp_path / 'p.npy'}" in one_line(capsys)
    assert not (tmp_path / "out").exists()
