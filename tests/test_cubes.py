import h5py
import numpy as np
import pytest

from nbgan_app.cubes import list_cube_files, load_cubes, write_cube
from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file


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
