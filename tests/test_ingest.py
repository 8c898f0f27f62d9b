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
        assert not out.exists() or not any(out.iterdir()), name


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
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path, particles):
    np.save(tmp_path / "p.npy", particles)
    ingest([tmp_path / "p.npy"], GRID, tmp_path / "out", box_size=BOX)
    with pytest.raises(InputError, match="already exists"):
        ingest([tmp_path / "p.npy"], GRID, tmp_path / "out", box_size=BOX)
    ingest([tmp_path / "p.npy"], 4, tmp_path / "out", box_size=BOX, overwrite=True)
    assert cube(tmp_path / "out" / "p.h5").shape == (4, 4, 4)
