"""Particle snapshots to count cubes, streamed in chunks (`nbgan ingest`).

Inputs:
- Gadget-format HDF5 snapshots: attribute `Header/BoxSize`, dataset
  `PartType1/Coordinates` of shape (N, 3) (dark matter). A snapshot split
  over several files `snap_005.0.hdf5, snap_005.1.hdf5, ...` is given as all
  its files (a shell glob `snap_005.*.hdf5` does); they make one cube, named
  after the common stem (`snap_005.h5`). A missing part is an error when the
  header's `NumFilesPerSnapshot` says how many there are.
- `.npy` arrays of shape (N, 3) with `box_size` given: positions in
  [0, box_size), one cube per file, named after the file's stem.

Box size: Gadget coordinates are binned against the header's `BoxSize`, in
whatever unit the snapshot uses (often kpc/h); the `box_size` attribute
written is `box_size` when given (the side in Mpc/h, e.g. 350 for a
BoxSize of 350000 kpc/h), else BoxSize as it is.

Memory is bounded by the chunk, not by the particle count: HDF5 datasets are
read slice by slice, and `.npy` files are read chunk by chunk straight from
the file (not memory-mapped: the pages of a mapping count as resident memory
once read, so a 10^8-particle map would hold its whole 1.2 GB). The grid's
own memory (16 bytes a cell while binning) is checked against the memory
available before anything is allocated.

All or nothing: every input (readable, shape, non-empty, box size) and every
output path is checked before any particle is read, and the cubes are
written under temporary names and renamed into place together once every
snapshot has been binned. A bad particle in the last file (NaN, outside the
box) therefore leaves no cube behind, and the corrected rerun is not refused
as "already exists".
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from nbgan_app.binning import DEFAULT_CHUNK, CountBinner
from nbgan_app.cubes import MAX_BOX_SIZE, check_box_size, check_memory, file_identity, write_cube_to
from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file, check_output_dir, check_output_file, ensure_writable_dir

COORDINATES = "PartType1/Coordinates"
# Bytes per grid cell while binning: the int64 running counts and each chunk's int64 bincount.
BYTES_PER_CELL = 16
_PART = re.compile(r"^(?P<stem>.+)\.(?P<part>\d+)\.(hdf5|h5)$")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot: its files (several for a split Gadget snapshot) and the cube name it makes."""

    name: str
    files: tuple[Path, ...]
    kind: str  # "gadget" | "npy"


def group_snapshots(paths: list[str | os.PathLike]) -> list[Snapshot]:
    """Group input files into snapshots, in the order first given; split Gadget parts join by stem."""
    parts: dict[str, dict[int, Path]] = {}
    kinds: dict[str, str] = {}
    seen: dict[tuple[int, int], Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            raise InputError(f"{path} is a directory; expected snapshot files (Gadget HDF5 or .npy): "
                             f"give its files, e.g. {path / '*.hdf5'}")
        if not path.exists():
            raise InputError(f"no such file: {path}")
        if not path.is_file():
            raise InputError(f"{path} is not a regular file; expected a Gadget HDF5 snapshot or .npy")
        first = seen.setdefault(file_identity(path), path)
        if first is not path:
            same = "given twice" if first == path else f"the same file as {first}"
            raise InputError(f"{path} is {same}; give each snapshot file once")
        kind = "npy" if path.suffix == ".npy" else "gadget"
        match = _PART.match(path.name) if kind == "gadget" else None
        stem, part = (match["stem"], int(match["part"])) if match else (path.stem, -1)
        if stem in parts and (part < 0 or part in parts[stem] or kinds[stem] != kind or -1 in parts[stem]):
            other = next(iter(parts[stem].values()))
            raise InputError(f"{path} and {other} would both make the cube {stem}.h5")
        kinds[stem] = kind
        parts.setdefault(stem, {})[part] = path
    return [Snapshot(stem, tuple(files[k] for k in sorted(files)), kinds[stem]) for stem, files in parts.items()]


def _open_hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path} is not a readable HDF5 file (expected a Gadget HDF5 snapshot or .npy)") from None


def _gadget_header(path: Path) -> tuple[float, int, int]:
    """(BoxSize, NumFilesPerSnapshot or 0 if absent, number of PartType1 particles) of one file."""
    with _open_hdf5(path) as f:
        header = f.get("Header")
        if header is None or "BoxSize" not in header.attrs:
            raise InputError(f"{path} has no Header attribute BoxSize (not a Gadget snapshot?)")
        box = float(np.ravel(header.attrs["BoxSize"])[0])
        files = int(header.attrs.get("NumFilesPerSnapshot", 0))
        this_file = np.ravel(header.attrs.get("NumPart_ThisFile", [-1, -1]))
        if COORDINATES not in f:
            if len(this_file) > 1 and this_file[1] == 0:
                return box, files, 0  # a part holding no dark matter has no PartType1 group
            raise InputError(f"{path} has no dataset {COORDINATES}")
        coords = f[COORDINATES]
        if coords.ndim != 2 or coords.shape[1] != 3 or coords.dtype.kind not in "fiu":
            raise InputError(f"{path}:{COORDINATES} has shape {coords.shape} and dtype {coords.dtype}; "
                             "expected numbers of shape (N, 3)")
        return box, files, coords.shape[0]


def _gadget_box(snapshot: Snapshot) -> float:
    """The snapshot's BoxSize, after checking its parts agree and none is missing."""
    headers = [_gadget_header(path) for path in snapshot.files]
    boxes = {box for box, _, _ in headers}
    if len(boxes) > 1:
        raise InputError(f"the files of snapshot {snapshot.name} disagree on BoxSize: {sorted(boxes)}")
    declared = headers[0][1]
    if declared and declared != len(snapshot.files):
        raise InputError(f"snapshot {snapshot.name} is split over {declared} files; "
                         f"{len(snapshot.files)} given ({', '.join(p.name for p in snapshot.files)})")
    box = boxes.pop()
    if not 0 < box < np.inf:
        raise InputError(f"{snapshot.files[0]}: Header BoxSize is {box}; expected a positive, finite side")
    return box


def _gadget_chunks(path: Path, chunk: int) -> Iterator[np.ndarray]:
    with _open_hdf5(path) as f:
        if COORDINATES not in f:
            return
        coords = f[COORDINATES]
        for start in range(0, coords.shape[0], chunk):
            yield coords[start:start + chunk]


def _npy_checked(path: Path) -> tuple[int, bool, np.dtype, int]:
    """(rows, fortran order, dtype, data offset) of an (N, 3) .npy file, reading only its header."""
    try:
        mapped = np.load(path, mmap_mode="r")  # maps, reads nothing but the header
    except (ValueError, OSError, EOFError):
        raise InputError(f"{path} is not a readable .npy array file") from None
    shape, dtype = mapped.shape, mapped.dtype
    if len(shape) != 2 or shape[1] != 3 or dtype.kind not in "fiu":
        raise InputError(f"{path} holds an array of shape {shape} and dtype {dtype}; "
                         "expected particle positions of shape (N, 3)")
    return shape[0], not mapped.flags.c_contiguous, dtype, mapped.offset


def _npy_chunks(path: Path, chunk: int) -> Iterator[np.ndarray]:
    """Rows of an (N, 3) .npy file, `chunk` at a time, read into one reused buffer."""
    rows, fortran, dtype, offset = _npy_checked(path)
    if fortran:  # columns are stored apart: take rows through a memory map instead
        mapped = np.load(path, mmap_mode="r")
        for start in range(0, rows, chunk):
            yield np.ascontiguousarray(mapped[start:start + chunk])
        return
    buffer = np.empty((min(chunk, rows), 3), dtype=dtype)
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, rows, chunk):
            view = buffer[:min(chunk, rows - start)]
            if f.readinto(memoryview(view).cast("B")) != view.nbytes:
                raise InputError(f"{path} is truncated: fewer than the {rows} rows its header declares")
            yield view


def snapshot_box_size(snapshot: Snapshot, box_size: float | None) -> tuple[float, float]:
    """(side the coordinates are binned against, side written as `box_size` in Mpc/h)."""
    if snapshot.kind == "npy":
        _npy_checked(snapshot.files[0])
        if box_size is None:
            raise InputError(f"{snapshot.files[0]}: .npy positions carry no box size; pass --box-size")
        return box_size, box_size
    native = _gadget_box(snapshot)
    if box_size is None:
        if native > MAX_BOX_SIZE:
            raise InputError(f"{snapshot.files[0]}: Header BoxSize is {native:g}, more than {MAX_BOX_SIZE:g} Mpc/h "
                             "(kpc/h, most likely); pass --box-size L, the side in Mpc/h")
        return native, check_box_size(native, f"{snapshot.files[0]}: Header BoxSize")
    return native, box_size


def bin_snapshot(snapshot: Snapshot, grid: int, box_size: float | None = None,
                 chunk: int | None = None, on_chunk: Callable[[int], None] | None = None
                 ) -> tuple[np.ndarray, float]:
    """Count cube (grid^3, float32) of one snapshot, and its box size in Mpc/h; streams in chunks."""
    native, written = snapshot_box_size(snapshot, box_size)
    chunk = chunk or chunk_size(grid)
    binner = CountBinner(grid, native)
    reader = _npy_chunks if snapshot.kind == "npy" else _gadget_chunks
    for path in snapshot.files:
        for positions in reader(path, chunk):
            binner.add(positions, source=str(path))
            if on_chunk is not None:
                on_chunk(len(positions))
    return binner.result(), written


def chunk_size(grid: int) -> int:
    """Particles per chunk: enough that each chunk's G^3 bincount stays a small overhead."""
    return int(np.clip(grid**3 // 2, DEFAULT_CHUNK, 1 << 23))


def count_particles(snapshot: Snapshot) -> int:
    """Number of particles in a snapshot, from headers only."""
    if snapshot.kind == "npy":
        return _npy_checked(snapshot.files[0])[0]
    return sum(_gadget_header(path)[2] for path in snapshot.files)


def check_snapshot(snapshot: Snapshot, box_size: float | None) -> int:
    """Check one snapshot's headers (shape, box size, parts) without reading particles; its particle count."""
    snapshot_box_size(snapshot, box_size)
    particles = count_particles(snapshot)
    if particles == 0:
        where = snapshot.files[0] if len(snapshot.files) == 1 else f"snapshot {snapshot.name} ({len(snapshot.files)} files)"
        raise InputError(f"{where} holds no particles; a cube of zeros has no density contrast")
    return particles


@dataclass(frozen=True)
class IngestPlan:
    """A checked ingest: the snapshots, the cube each makes, and what the binning will use."""

    snapshots: tuple[Snapshot, ...]
    outputs: tuple[Path, ...]
    out_dir: Path
    grid: int
    box_size: float | None
    chunk: int
    overwrite: bool
    particles: int  # over all snapshots, for a progress bar


def plan_ingest(paths: list[str | os.PathLike], grid: int, out_dir: str | os.PathLike,
                box_size: float | None = None, overwrite: bool = False, chunk: int | None = None) -> IngestPlan:
    """Check every input and output of an ingest, from headers alone, writing nothing.

    Raises:
        InputError: a bad flag, a missing, unreadable, empty or malformed
            input, a grid too large for the memory available, or an output
            that exists (without `overwrite`), is a directory, or whose
            directory cannot be made (only `out_dir` itself is; its parent
            must exist).
    """
    if grid <= 0:
        raise InputError(f"--grid: expected > 0. Received: {grid}")
    if chunk is not None and chunk <= 0:
        raise InputError(f"--chunk: expected > 0. Received: {chunk}")
    if box_size is not None:
        box_size = check_box_size(box_size, "--box-size")
    snapshots = group_snapshots(paths)
    counts = [check_snapshot(snapshot, box_size) for snapshot in snapshots]
    chunk = chunk or chunk_size(grid)
    # the grid's counts while binning, and one chunk of positions (float64) with its cell indices
    check_memory(grid**3 * BYTES_PER_CELL + min(chunk, max(counts)) * 32,
                 f"--grid {grid}: binning a {grid}^3 count cube ({BYTES_PER_CELL} bytes a cell)")
    out_dir = check_output_dir(out_dir)
    outputs = tuple(out_dir / f"{snapshot.name}.h5" for snapshot in snapshots)
    if out_dir.exists():
        for path in outputs:
            check_output_file(path, overwrite)
    return IngestPlan(tuple(snapshots), outputs, out_dir, grid, box_size, chunk, overwrite, sum(counts))


def run_ingest(plan: IngestPlan, on_chunk: Callable[[int], None] | None = None) -> list[Path]:
    """Bin the snapshots of a checked plan; the cubes are renamed into place together at the end."""
    created = not plan.out_dir.exists()
    ensure_writable_dir(plan.out_dir)
    try:
        with contextlib.ExitStack() as renames:  # every rename waits for the last snapshot
            for snapshot, path in zip(plan.snapshots, plan.outputs):
                tmp = renames.enter_context(atomic_file(path, overwrite=plan.overwrite))
                counts, written_box = bin_snapshot(snapshot, plan.grid, plan.box_size, plan.chunk, on_chunk)
                write_cube_to(tmp, counts, box_size=written_box, source=", ".join(p.name for p in snapshot.files),
                              particles=int(counts.sum(dtype=np.float64)))
    except BaseException:
        if created:  # NaN or out-of-box particles show only while binning: leave no empty directory either
            with contextlib.suppress(OSError):
                plan.out_dir.rmdir()
        raise
    return list(plan.outputs)


def ingest(paths: list[str | os.PathLike], grid: int, out_dir: str | os.PathLike,
           box_size: float | None = None, overwrite: bool = False, chunk: int | None = None,
           on_chunk: Callable[[int], None] | None = None) -> list[Path]:
    """Bin each snapshot in `paths` into `out_dir/<name>.h5`; return the files written.

    All or nothing: every input and output is checked before the first
    particle is read (`plan_ingest`), and the cubes are renamed into place
    together once every snapshot is binned, so a failure leaves no cube.
    """
    return run_ingest(plan_ingest(paths, grid, out_dir, box_size, overwrite, chunk), on_chunk)
