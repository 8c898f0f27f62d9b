"""Reading and writing count cubes (DESIGN.md, "Cube files").

A cube file is HDF5 with a dataset `data` holding particle counts on a regular
periodic grid, shape (G, G, G) (or (G, G) for 2-D slices), and optionally an
attribute `box_size`: the side of the box in Mpc/h. A directory of cube files
is a dataset, read in sorted name order. Files with a leading batch axis,
shape (N, G, G, G) as the sampler writes them, hold N cubes.

Everything read is checked: the file exists and is HDF5, has `data`, is
square/cubic, finite and non-negative. Counts come back as float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file

DATA_KEY = "data"
CUBE_SUFFIXES = (".h5", ".hdf5")


def list_cube_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and directories into cube files; directories in sorted name order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in CUBE_SUFFIXES and not p.name.startswith("."))
            if not found:
                raise InputError(f"directory {path} holds no cube files (*.h5, *.hdf5)")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputError(f"no such file or directory: {path}")
    if not files:
        raise InputError("no cube files given")
    return files


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(f"no such file: {path}")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path} is not a readable HDF5 file") from None


def check_counts(array: np.ndarray, name: str) -> None:
    """Raise InputError unless `array` is finite and non-negative."""
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} holds NaN or infinite counts")
    if np.any(array < 0):
        raise InputError(f"{name} holds negative counts")


def _check_shape(shape: tuple[int, ...], name: str, batched: bool) -> None:
    spatial = shape[1:] if batched else shape
    if len(spatial) not in (2, 3) or len(set(spatial)) != 1:
        raise InputError(f"{name} has shape {shape}; expected a square or cubic grid")


def read_box_size(path: Path) -> float | None:
    """The `box_size` attribute of a cube file in Mpc/h, or None when absent."""
    with _open(path) as f:
        value = f[DATA_KEY].attrs.get("box_size", f.attrs.get("box_size")) if DATA_KEY in f else None
    return None if value is None else float(value)


def _dataset(f: h5py.File, path: Path) -> tuple[h5py.Dataset, bool]:
    """The checked `data` dataset of an open file, and whether it holds a batch."""
    if DATA_KEY not in f:
        raise InputError(f"{path} has no dataset '{DATA_KEY}'")
    data = f[DATA_KEY]
    if not isinstance(data, h5py.Dataset) or data.dtype.kind not in "fiu":
        raise InputError(f"{path}:{DATA_KEY} is not a numeric dataset")
    # (G,G,G) is one 3-D cube; (N,G,G,G) and non-cubic (N,G,G) are batches.
    batched = data.ndim == 4 or (data.ndim == 3 and len(set(data.shape)) != 1)
    _check_shape(data.shape, f"{path}:{DATA_KEY}", batched)
    if not bool(f.attrs.get("complete", True)):
        raise InputError(f"{path} is marked incomplete (an interrupted write; rerun with --resume)")
    return data, batched


def cube_layout(path: Path) -> tuple[int, tuple[int, ...]]:
    """(number of cubes, shape of one cube) of a file, from its metadata alone."""
    with _open(path) as f:
        data, batched = _dataset(f, path)
        return (data.shape[0], data.shape[1:]) if batched else (1, data.shape)


def iter_cubes(path: Path) -> Iterator[np.ndarray]:
    """Yield the cubes of one file as float32 arrays, one at a time (bounded memory)."""
    with _open(path) as f:
        data, batched = _dataset(f, path)
        for i in range(data.shape[0]) if batched else [None]:
            cube = np.asarray(data[i] if i is not None else data[()], dtype=np.float32)
            check_counts(cube, f"{path}:{DATA_KEY}")
            yield cube


def load_cubes(
    paths: Iterable[str | os.PathLike],
    box_size: float | None = None,
) -> tuple[np.ndarray, float | None]:
    """Load every cube under `paths` into one (N, G, ..., G) float32 array.

    Args:
        paths: files or directories of cube files.
        box_size: box side in Mpc/h. When given it wins over the files'
            attribute (the 3Dcosmo files carry none); when not, the files
            must agree on it.

    Returns:
        counts of shape (N, G, G, G), and the box size (None if unknown).
    """
    files = list_cube_files(paths)
    layouts = [cube_layout(path) for path in files]
    for path, (_, shape) in zip(files, layouts):
        if shape != layouts[0][1]:
            raise InputError(f"{path} has cube shape {shape}; {files[0]} has {layouts[0][1]}")
    # filled in place: the paper's 30 cubes of 256^3 take 2 GB once, not twice
    counts = np.empty((sum(n for n, _ in layouts),) + tuple(layouts[0][1]), np.float32)
    sizes: set[float] = set()
    filled = 0
    for path in files:
        file_box = read_box_size(path)
        if file_box is not None:
            sizes.add(file_box)
        for cube in iter_cubes(path):
            counts[filled] = cube
            filled += 1
    if box_size is None and len(sizes) > 1:
        raise InputError(f"the cube files disagree on box_size: {sorted(sizes)} Mpc/h")
    if box_size is None and sizes:
        box_size = sizes.pop()
    return counts, box_size


def common_box_size(flag: float | None, real_box: float | None, fake_box: float | None) -> float:
    """The one box size of two sets of cubes, real and fake: the flag, else the files', which must agree."""
    if flag is not None:
        return flag
    if real_box is not None and fake_box is not None and real_box != fake_box:
        raise InputError(f"box sizes differ: real cubes {real_box:g} Mpc/h, fake cubes {fake_box:g} Mpc/h")
    if real_box is None and fake_box is None:
        raise InputError("box size unknown: the real and fake files carry no box_size attribute; "
                         "pass --box-size L (Mpc/h)")
    return real_box if real_box is not None else fake_box


def write_cube(
    path: str | os.PathLike,
    counts: np.ndarray,
    box_size: float | None = None,
    overwrite: bool = False,
    **attrs,
) -> Path:
    """Write one cube (or a batch) atomically as dataset `data`, float32, with `box_size` in Mpc/h."""
    counts = np.asarray(counts, dtype=np.float32)
    path = Path(path)
    with atomic_file(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            data = f.create_dataset(DATA_KEY, data=counts)
            if box_size is not None:
                data.attrs["box_size"] = float(box_size)
                f.attrs["box_size"] = float(box_size)
            for key, value in attrs.items():
                f.attrs[key] = value
    return path
