"""Reading and writing count cubes (docs/design.md, "Cube files").

A cube file is HDF5 with a dataset `data` holding particle counts on a regular
periodic grid, shape (G, G, G) (or (G, G) for 2-D slices), and optionally an
attribute `box_size`: the side of the box in Mpc/h. A directory of cube files
is a dataset, read in sorted name order. Files with a leading batch axis,
shape (N, G, G, G) as the sampler writes them, hold N cubes.

Everything read is checked: the file exists and is HDF5, has `data`, is
square/cubic, finite and non-negative; no file is given twice (under any
spelling, symlink or hard link); a `box_size` is a finite side in Mpc/h
(`check_box_size`). Counts come back as float32. A load that would not fit in
the memory available is refused before anything is allocated (`check_memory`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import h5py
import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file

DATA_KEY = "data"
CUBE_SUFFIXES = (".h5", ".hdf5")
# Box sides outside this range (Mpc/h) are refused: 1e5 Mpc/h is several times the
# observable universe (a side in kpc/h, most likely), and both ends keep L^3 and
# 2 pi / L far from float overflow and underflow.
MIN_BOX_SIZE, MAX_BOX_SIZE = 1e-6, 1e5


def check_box_size(value, where: str) -> float:
    """`value` as a box side in Mpc/h, or an InputError naming `where` (a flag, key or file).

    A side is a finite number in [MIN_BOX_SIZE, MAX_BOX_SIZE] Mpc/h.
    """
    try:
        side = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected a box side in Mpc/h. Received: {value!r}") from None
    if not math.isfinite(side) or not side > 0:
        raise InputError(f"{where}: expected a positive, finite box side in Mpc/h. Received: {value}")
    if side > MAX_BOX_SIZE:
        raise InputError(f"{where}: box side {side:g} Mpc/h is larger than the observable universe "
                         f"(at most {MAX_BOX_SIZE:g}); a side in kpc/h? Give it in Mpc/h")
    if side < MIN_BOX_SIZE:
        raise InputError(f"{where}: box side {side:g} Mpc/h is below {MIN_BOX_SIZE:g} Mpc/h; give it in Mpc/h")
    return side


def file_identity(path: Path) -> tuple[int, int]:
    """(device, inode): equal for every spelling, symlink and hard link of one file."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def list_cube_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and directories into cube files; directories in sorted name order.

    Raises:
        InputError: a path is missing, a directory holds no cube files, or one
            file comes twice (given twice, by another spelling or a link, or
            both as a file and inside a directory given): its cubes would
            count twice, shrinking spreads and collapsing the real-vs-real floor.
    """
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
    seen: dict[tuple[int, int], Path] = {}
    for path in files:
        first = seen.setdefault(file_identity(path), path)
        if first is not path:
            same = "given twice" if first == path else f"the same file as {first}"
            raise InputError(f"cube file {path} is {same}; give each file once (its cubes would count twice)")
    return files


def check_disjoint(a: list[Path], b: list[Path], a_name: str, b_name: str) -> None:
    """Raise InputError when a file is in both lists (under any spelling or link)."""
    first = {file_identity(path): path for path in a}
    for path in b:
        if file_identity(path) in first:
            other = first[file_identity(path)]
            also = "" if other == path else f" (as {other})"
            raise InputError(f"{path} is given both in {b_name} and{also} in {a_name}; "
                             "the two sets must be different cubes")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping (psutil), or None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - an unknown amount means no check, never a failure
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None


def format_bytes(n: float) -> str:
    """`n` bytes for people: "16 PB", "23.2 GB", "512 B" (powers of 1000)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    step = 0
    while n >= 1000 and step < len(units) - 1:
        n, step = n / 1000, step + 1
    return f"{n:.3g} {units[step]}"


def check_memory(nbytes: int, what: str) -> None:
    """Raise InputError, before allocating, when `what` needs more than the memory available.

    `what` names the culprit and the thing allocated, e.g. "--grid 4096: a 4096^3 count cube".
    """
    available = available_memory()
    if available is not None and nbytes > available:
        raise InputError(f"{what} needs {format_bytes(nbytes)}, more than the {format_bytes(available)} "
                         "of memory available")


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
    """The `box_size` attribute of a cube file in Mpc/h, or None when absent (not range-checked)."""
    with _open(path) as f:
        value = f[DATA_KEY].attrs.get("box_size", f.attrs.get("box_size")) if DATA_KEY in f else None
    if value is None:
        return None
    try:
        return float(np.ravel(value)[0])
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{path}: attribute box_size is {value!r}; expected a number (Mpc/h)") from None


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


class CubeSet(NamedTuple):
    """Cubes loaded from files: counts (N, G, ..., G) float32, the box side in Mpc/h (None if
    unknown), the files in order, and one label per cube naming where it came from
    ("path" for a file of one cube, "path[i]" for cube i of a batch file)."""

    counts: np.ndarray
    box_size: float | None
    files: list[Path]
    labels: list[str]


def load_cube_set(paths: Iterable[str | os.PathLike], box_size: float | None = None) -> CubeSet:
    """Load every cube under `paths` into one (N, G, ..., G) float32 array, with where each came from.

    Args:
        paths: files or directories of cube files; each file at most once.
        box_size: box side in Mpc/h. When given it wins over the files'
            attribute (the 3Dcosmo files carry none); when not, the files
            must agree on it, and it must be a valid side (`check_box_size`).
    """
    paths = list(paths)
    if box_size is not None:
        box_size = check_box_size(box_size, "the box size given for the cube files")
    files = list_cube_files(paths)
    layouts = [cube_layout(path) for path in files]
    for path, (_, shape) in zip(files, layouts):
        if shape != layouts[0][1]:
            raise InputError(f"{path} has cube shape {shape}; {files[0]} has {layouts[0][1]}")
    n_cubes = sum(n for n, _ in layouts)
    shape = (n_cubes,) + tuple(layouts[0][1])
    # np.empty reserves lazily: without this a set too large is killed half-way through reading
    check_memory(4 * math.prod(shape), f"the {n_cubes} cubes of {layouts[0][1]} under {', '.join(map(str, paths))}")
    labels = [str(path) if n == 1 else f"{path}[{i}]" for path, (n, _) in zip(files, layouts) for i in range(n)]
    # filled in place: the paper's 30 cubes of 256^3 take 2 GB once, not twice
    counts = np.empty(shape, np.float32)
    sizes: dict[float, Path] = {}
    filled = 0
    for path in files:
        file_box = read_box_size(path) if box_size is None else None
        if file_box is not None:
            sizes.setdefault(check_box_size(file_box, f"{path}: attribute box_size"), path)
        for cube in iter_cubes(path):
            counts[filled] = cube
            filled += 1
    if box_size is None and len(sizes) > 1:
        raise InputError(f"the cube files disagree on box_size: {sorted(sizes)} Mpc/h "
                         f"({', '.join(f'{p}: {b:g}' for b, p in sizes.items())}); pass --box-size L")
    if box_size is None and sizes:
        box_size = next(iter(sizes))
    return CubeSet(counts, box_size, files, labels)


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
    cubes = load_cube_set(paths, box_size)
    return cubes.counts, cubes.box_size


def check_not_empty(counts: np.ndarray, labels: list[str]) -> None:
    """Raise InputError naming the first cube whose counts are all zero (it has no density contrast)."""
    for label, total in zip(labels, _sums(counts)):
        if total == 0:
            raise InputError(f"{label} holds no particles (every count is 0): "
                             "an empty cube has no density contrast or statistics")


def _sums(counts: np.ndarray) -> np.ndarray:
    return counts.reshape(len(counts), -1).sum(axis=1, dtype=np.float64)


def identical_pair(counts: np.ndarray) -> tuple[int, int] | None:
    """The first (i, j), j < i, with cube i of `counts` equal to cube j value for value, or None.

    Only cubes of equal sums can be equal, so only those are compared: one pass over the data.
    """
    seen: dict[float, list[int]] = {}
    for i, total in enumerate(_sums(counts)):
        for j in seen.get(float(total), []):
            if np.array_equal(counts[i], counts[j]):
                return i, j
        seen.setdefault(float(total), []).append(i)
    return None


def check_distinct(counts: np.ndarray, labels: list[str], what: str = "cubes") -> None:
    """Raise InputError naming two cubes of `counts` that are identical, value for value.

    Copies of one cube (a file copied under another name) pass the file
    checks; in a real set they collapse the real-vs-real floor.
    """
    pair = identical_pair(counts)
    if pair is not None:
        later, first = pair
        raise InputError(f"{labels[later]} is identical to {labels[first]}: the {what} must be different cubes "
                         "(a copied file?)")


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
    path = Path(path)
    with atomic_file(path, overwrite=overwrite) as tmp:
        write_cube_to(tmp, counts, box_size, **attrs)
    return path


def write_cube_to(target: Path, counts: np.ndarray, box_size: float | None = None, **attrs) -> None:
    """Write a cube file at `target` as it stands (the caller makes it atomic, e.g. with `atomic_file`)."""
    counts = np.asarray(counts, dtype=np.float32)
    with h5py.File(target, "w") as f:
        data = f.create_dataset(DATA_KEY, data=counts)
        if box_size is not None:
            data.attrs["box_size"] = float(box_size)
            f.attrs["box_size"] = float(box_size)
        for key, value in attrs.items():
            f.attrs[key] = value
