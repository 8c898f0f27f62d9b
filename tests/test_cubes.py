import os

import h5py
import numpy as np
import pytest

from nbgan_app import cubes
from nbgan_app.cubes import (check_box_size, check_distinct, check_not_empty, identical_pair, list_cube_files,
                             load_cube_set, load_cubes, write_cube)
from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file, check_output_dir, ensure_writable_dir


def test_round_trip_and_sorted_directory(tmp_path):
    for i in (2, 0, 1):
        write_cube(tmp_path / f"c{i}.h5", np.full((4, 4, 4), i, np.float32), box_size=50.0)
    counts, box = load_cubes([tmp_path])
    assert counts.shape == (3, 4, 4, 4) and box == 50.0
    assert [c[0, 0, 0] for c in counts] == [0, 1, 2]


def test_3dcosmo_layout_float64_no_attrs(tmp_path):
    path = tmp_path / "256_nbody_350Mpc_0.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(8**3, dtype=np.float64).reshape(8, 8, 8)
    counts, box = load_cubes([path], box_size=350.0)
    assert counts.dtype == np.float32 and box == 350.0 and counts[0, 1, 0, 0] == 64


def test_batched_file(tmp_path):
    write_cube(tmp_path / "s.h5", np.ones((5, 4, 4, 4)), box_size=10.0)
    assert load_cubes([tmp_path / "s.h5"])[0].shape == (5, 4, 4, 4)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("not hdf5"), "not a readable HDF5"),
    (lambda p: h5py.File(p, "w").create_dataset("other", data=np.ones((4, 4, 4))), "no dataset 'data'"),
    (lambda p: h5py.File(p, "w").create_dataset("data", data=np.ones((4, 4, 5, 3))), "shape"),
    (lambda p: h5py.File(p, "w").create_dataset("data", data=np.full((4, 4, 4), np.nan)), "NaN"),
    (lambda p: h5py.File(p, "w").create_dataset("data", data=-np.ones((4, 4, 4))), "negative"),
])
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "x.h5"
    handle = make(path)
    if isinstance(handle, h5py.Dataset):
        handle.file.close()
    with pytest.raises(InputError, match=message) as info:
        load_cubes([path])
    assert str(path) in str(info.value)


def test_mismatched_shapes_and_empty_dir(tmp_path):
    write_cube(tmp_path / "a.h5", np.ones((4, 4, 4)))
    write_cube(tmp_path / "b.h5", np.ones((8, 8, 8)))
    with pytest.raises(InputError, match="b.h5"):
        load_cubes([tmp_path])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no cube files"):
        list_cube_files([tmp_path / "empty"])


def test_atomic_write_leaves_nothing_on_failure_and_never_overwrites(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_cube(target, np.ones((4, 4, 4)))
    with pytest.raises(InputError, match="already exists"):
        write_cube(target, np.zeros((4, 4, 4)))
    assert load_cubes([target])[0].max() == 1


def test_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="output"):
        write_cube(blocker / "sub" / "x.h5", np.ones((4, 4, 4)))


def test_one_file_given_twice_under_any_spelling_is_refused(tmp_path):
    """Issue 12 #6: a cube counted twice shrinks spreads and collapses the real-vs-real floor."""
    for i in range(2):
        write_cube(tmp_path / f"c{i}.h5", np.full((4, 4, 4), i + 1.0), box_size=50.0)
    c0 = tmp_path / "c0.h5"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link.h5").symlink_to(c0)
    os.link(c0, tmp_path / "elsewhere" / "hard.h5")
    spellings = [
        [c0, c0],
        [c0, tmp_path / "." / "c0.h5"],
        [c0, tmp_path / "elsewhere" / ".." / "c0.h5"],
        [c0, tmp_path / "elsewhere" / "link.h5"],
        [c0, tmp_path / "elsewhere" / "hard.h5"],
        [tmp_path, c0],  # once inside the directory, once by name
    ]
    for paths in spellings:
        with pytest.raises(InputError, match=r"is (given twice|the same file as \S*c0\.h5); give each file once"):
            load_cubes(paths)
    assert len(load_cubes([tmp_path / "c0.h5", tmp_path / "c1.h5"])[0]) == 2


@pytest.mark.parametrize("value, message", [
    (np.inf, "positive, finite"), (-np.inf, "positive, finite"), (np.nan, "positive, finite"),
    (-5.0, "positive, finite"), (1e300, "larger than the observable universe"), ("abc", "expected a number"),
])
def test_box_size_attribute_must_be_a_finite_side(tmp_path, value, message):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.ones((4, 4, 4))
        f.attrs["box_size"] = value
    with pytest.raises(InputError, match=message) as info:
        load_cubes([path])
    assert str(path) in str(info.value)
    assert load_cubes([path], box_size=50.0)[1] == 50.0  # the flag wins over a broken attribute


@pytest.mark.parametrize("value", [np.inf, np.nan, 0.0, -1.0, 1e6, 1e-9])
def test_check_box_size_refuses_what_is_not_a_side_in_mpc(value):
    with pytest.raises(InputError, match="--box-size"):
        check_box_size(value, "--box-size")
    assert check_box_size("64", "--box-size") == 64.0


def test_load_that_does_not_fit_in_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    write_cube(tmp_path / "c.h5", np.ones((3, 8, 8, 8)), box_size=50.0)
    monkeypatch.setattr(cubes, "available_memory", lambda: 1000)
    with pytest.raises(InputError, match=r"3 cubes of \(8, 8, 8\) .* needs 6.14 kB, more than the 1 kB"):
        load_cubes([tmp_path / "c.h5"])


def test_empty_and_identical_cubes_are_named(tmp_path):
    batch = np.ones((3, 4, 4, 4))
    batch[1] = 0
    write_cube(tmp_path / "b.h5", batch, box_size=50.0)
    cube_set = load_cube_set([tmp_path / "b.h5"])
    assert cube_set.labels == [f"{tmp_path / 'b.h5'}[{i}]" for i in range(3)]
    with pytest.raises(InputError, match=r"b\.h5\[1\] holds no particles"):
        check_not_empty(cube_set.counts, cube_set.labels)
    with pytest.raises(InputError, match=r"b\.h5\[2\] is identical to .*b\.h5\[0\]"):
        check_distinct(cube_set.counts, cube_set.labels)
    check_distinct(cube_set.counts[:2], cube_set.labels[:2])  # equal sums are not enough
    same_sum = np.stack([np.arange(8.0).reshape(2, 2, 2), np.arange(8.0)[::-1].reshape(2, 2, 2)])
    assert identical_pair(same_sum) is None


def test_atomic_file_refuses_a_directory_even_with_overwrite(tmp_path):
    target = tmp_path / "out.json"
    target.mkdir()
    for overwrite in (False, True):
        with pytest.raises(InputError, match="is a directory"):
            with atomic_file(target, overwrite=overwrite) as tmp:
                tmp.write_text("{}")
    assert target.is_dir() and list(target.iterdir()) == [] and list(tmp_path.iterdir()) == [target]


def test_outputs_create_only_their_own_file_or_directory(tmp_path):
    """Issue 12 #12: a typo in a path must not make directories; a layout nbgan owns opts in."""
    with pytest.raises(InputError, match=r"directory .*typo does not exist"):
        write_cube(tmp_path / "typo" / "x.h5", np.ones((4, 4, 4)))
    with pytest.raises(InputError, match=r"its parent directory .*typo does not exist"):
        ensure_writable_dir(tmp_path / "typo" / "out")
    with pytest.raises(InputError, match=r"its parent directory .*typo does not exist"):
        check_output_dir(tmp_path / "typo" / "out")
    assert list(tmp_path.iterdir()) == []
    assert ensure_writable_dir(tmp_path / "out").is_dir()  # its own directory is made
    with atomic_file(tmp_path / "deep" / "er" / "x.txt", parents=True) as tmp:
        tmp.write_text("ok")
    assert (tmp_path / "deep" / "er" / "x.txt").read_text() == "ok"
    assert ensure_writable_dir(tmp_path / "a" / "b", parents=True).is_dir()
    check_output_dir(tmp_path / "c" / "d", parents=True)
    assert not (tmp_path / "c").exists()  # a check creates nothing
