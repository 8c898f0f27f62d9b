"""The sample file: streamed, chunked HDF5 output that is complete, resumable, or absent.

Layout (docs/design.md, "Sample files"):
    data               (N, S, ..., S) float32 counts (after the backward
                       transform), chunked by patch (1, p, ..., p)
    levels/<level>     the coarser levels of the chain, same layout, in the
                       models' transformed space (the next level reads its
                       coarse windows back from here, so memory stays bounded)
    progress/<name>    (n, ..., n) uint8 done flags of each dataset's patch
                       grid, flushed once per wave: what `--resume` skips
    progress/frontier_data
                       (d+1, N, n^(d-1), p^d) float32 ring of the finest
                       level's patches in transformed space that later
                       patches still need (orders.frontier_key): `data` holds
                       counts, and backward then forward is not the identity
                       in float32 (and clips negatives), so a resumed run reads
                       its neighbours here and writes exactly the bytes an
                       uninterrupted run writes. Bounded by the wavefront:
                       (d+1) N S^(d-1) p values, not the cube.
    attrs              `complete` (False until the very end), and whatever
                       the caller names (runs, seed, order, transform, box_size)

A new file is written under a hidden temporary name and renamed into place
after its first generated wave (a given input level does not count), so a run
that fails before that leaves nothing behind; a run interrupted later leaves
`complete = False` under the name, for `--resume`. An existing file is
replaced (with overwrite) only by a complete one: the new file stays under its
temporary name until its last patch is written, so a failed or killed run
leaves the old file as it was (and nothing to resume: rerun with overwrite).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.outputs import ensure_writable_dir, temporary_name
from nbgan_app.sampling.orders import dependents, frontier_key, frontier_slots

Index = tuple[int, ...]
# (transformed patch, cube, patch index) -> what the file stores
Transform = Callable[[np.ndarray, int, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the file: `side` voxels per axis, generated in patches of `patch` (== side: whole)."""

    name: str
    side: int
    patch: int
    ndim: int = 3
    frontier: bool = False  # keep the transformed patches later patches need (a level stored transformed)

    @property
    def n(self) -> int:
        return self.side // self.patch

    @property
    def frontier_name(self) -> str:
        return "progress/frontier_" + self.name.replace("/", "_")

    @property
    def frontier_shape(self) -> tuple[int, ...]:
        """Of one cube's ring: (slots, n^(d-1) positions, p^d)."""
        return (frontier_slots(self.ndim),) + (self.n,) * (self.ndim - 1) + (self.patch,) * self.ndim

    @property
    def chunk(self) -> int:
        """HDF5 chunk side: the patch, but at most 32 for whole-cube levels (read back in small windows)."""
        return self.patch if self.patch < self.side else math.gcd(self.side, 32)


def patch_region(cube: int, index: Index, patch: int) -> tuple:
    """The (cube, slices...) region of patch `index` of cube `cube` in an (N, S, ..., S) array."""
    return (cube,) + tuple(slice(i * patch, (i + 1) * patch) for i in index)


class LevelTarget:
    """One dataset as the sampler sees it: patches in transformed space, per-patch done flags.

    `to_file` maps a transformed patch, with its cube and patch index, to what
    is stored (counts for `data`, `particles.patch_counts`; identity for the
    coarser levels). `read` gives a finished patch back in transformed space
    exactly as it was generated: from the frontier ring (keyed by `order`)
    where the spec keeps one, else from the dataset itself (whose values are
    then the transformed ones).
    """

    def __init__(self, sample_file: "SampleFile", spec: DatasetSpec, to_file: Transform, order: str):
        self.file, self.spec, self.to_file, self.order = sample_file, spec, to_file, order
        self.dataset = sample_file.h5[spec.name]
        self.flags = sample_file.h5["progress/" + spec.name.replace("/", "_")]
        self.frontier = sample_file.h5[spec.frontier_name] if spec.frontier else None
        self._done = np.asarray(self.flags[()], dtype=bool)

    def _ring(self, cube: int, index: Index) -> tuple:
        slot, position = frontier_key(index, self.order)
        return (slot, cube) + position

    def write(self, cube: int, index: Index, values: np.ndarray) -> None:
        self.dataset[patch_region(cube, index, self.spec.patch)] = np.asarray(self.to_file(values, cube, index),
                                                                              np.float32)
        if self.frontier is not None and dependents(index, self.spec.n):
            self.frontier[self._ring(cube, index)] = values

    def read(self, cube: int, index: Index) -> np.ndarray:
        if self.frontier is not None:
            return np.asarray(self.frontier[self._ring(cube, index)], np.float32)
        return np.asarray(self.dataset[patch_region(cube, index, self.spec.patch)], np.float32)

    def is_done(self, index: Index) -> bool:
        return bool(self._done[index])

    def all_done(self) -> bool:
        return bool(self._done.all())

    def mark_done(self, indices: list[Index], generated: bool = True) -> None:
        """Flag a finished wave and flush it to disk (the unit of `--resume`).

        `generated=False` for a given input level: a new file is put in place
        only once it holds something the run made (`SampleFile.flushed_wave`).
        """
        for index in indices:
            self._done[index] = True
        self.flags[()] = self._done.astype(np.uint8)
        self.file.flushed_wave(generated)


class SampleFile:
    """Context manager over the HDF5 file of one sampling run (new, overwritten or resumed)."""

    def __init__(self, path: str | os.PathLike, specs: list[DatasetSpec], n_cubes: int, attrs: dict,
                 overwrite: bool = False, resume: bool = False, checked: tuple[str, ...] | None = None,
                 labels: dict[str, str] | None = None):
        """`labels` name an attribute as the user sets it (n_cubes: "--n") in a resume's refusal."""
        self.path, self.specs, self.n_cubes, self.attrs = Path(path), specs, n_cubes, attrs
        self.checked = tuple(attrs) if checked is None else checked  # attrs a resume must match
        self.labels = labels or {}
        self.overwrite, self.resume = overwrite, resume
        self.placed = False
        self.replacing = False  # an existing file is replaced only by a complete one
        self.tmp: Path | None = None
        self.h5: h5py.File | None = None

    def __enter__(self) -> "SampleFile":
        if self.resume:
            self._open_existing()
        else:
            if self.path.is_dir():
                raise InputError(f"output {self.path} is a directory; expected the name of a file to write")
            if self.path.exists() or self.path.is_symlink():
                if not self.overwrite:
                    raise InputError(f"output {self.path} already exists (pass --overwrite to replace it, "
                                     "or --resume to finish an interrupted run)")
                self.replacing = True
            if not self.path.parent.is_dir():  # a typo in the path must not make directories
                raise InputError(f"output {self.path}: directory {self.path.parent} does not exist "
                                 "(create it first, or check the path for a typo)")
            ensure_writable_dir(self.path.parent)
            self._check_space()
            self.tmp = temporary_name(self.path)
            self.h5 = h5py.File(self.tmp, "w")
            self._create()
        return self

    def nbytes(self) -> int:
        """Bytes the file's datasets take once written (float32 levels and frontier ring)."""
        total = 0
        for spec in self.specs:
            total += 4 * self.n_cubes * spec.side ** spec.ndim
            if spec.frontier:
                total += 4 * self.n_cubes * math.prod(spec.frontier_shape)
        return total

    def _check_space(self) -> None:
        """InputError before anything is written when the file cannot fit on its disk."""
        need, free = self.nbytes(), shutil.disk_usage(self.path.parent).free
        if need > free:
            side = self.specs[-1].side
            raise InputError(f"output {self.path}: {self.n_cubes} cubes of {side}^{self.specs[-1].ndim} "
                             f"need about {_size(need)}, more than the {_size(free)} free in "
                             f"{self.path.parent} (lower --n or --size)")

    def _create(self) -> None:
        for key, value in self.attrs.items():
            self.h5.attrs[key] = _attr(value)
        self.h5.attrs["complete"] = False
        for spec in self.specs:
            chunk = (1,) + (spec.chunk,) * spec.ndim
            self.h5.create_dataset(spec.name, shape=(self.n_cubes,) + (spec.side,) * spec.ndim,
                                   dtype="float32", chunks=chunk, fillvalue=0.0)
            self.h5.create_dataset("progress/" + spec.name.replace("/", "_"),
                                   data=np.zeros((spec.n,) * spec.ndim, np.uint8))
            if spec.frontier:
                ring = spec.frontier_shape
                self.h5.create_dataset(spec.frontier_name, shape=ring[:1] + (self.n_cubes,) + ring[1:],
                                       dtype="float32", chunks=(1, 1) + (1,) * (spec.ndim - 1) + ring[spec.ndim:])

    def _open_existing(self) -> None:
        if self.path.is_dir():
            raise InputError(f"--resume: output {self.path} is a directory, not a sample file")
        if not self.path.exists():
            raise InputError(f"--resume: output {self.path} does not exist")
        try:  # checked read-only first: a refused resume leaves the file exactly as it was
            with h5py.File(self.path, "r") as h5:
                self._check_matches(h5)
            self.h5 = h5py.File(self.path, "r+")
        except OSError:
            raise InputError(f"--resume: {self.path} is not a writable HDF5 file") from None
        self.placed = True

    def _check_matches(self, h5: h5py.File) -> None:
        check_attrs(self.path, h5.attrs, self.attrs, self.checked, self.labels)
        for spec in self.specs:
            shape = (self.n_cubes,) + (spec.side,) * spec.ndim
            if spec.name not in h5 or h5[spec.name].shape != shape or (
                    spec.frontier and spec.frontier_name not in h5):
                raise InputError(f"--resume: {self.path} has no dataset {spec.name} of shape {shape} "
                                 "(with its frontier)")

    @property
    def complete(self) -> bool:
        return bool(self.h5.attrs.get("complete", False))

    def done_flags(self, name: str) -> np.ndarray:
        """The done flags of dataset `name`'s patch grid, (n, ..., n) bool (all False in a new file)."""
        return np.asarray(self.h5["progress/" + name.replace("/", "_")][()], dtype=bool)

    def dataset(self, name: str) -> h5py.Dataset:
        """The stored level `name`, as the next level of a chain reads its coarse windows from it."""
        return self.h5[name]

    def target(self, name: str, to_file: Transform | None = None, order: str = "wavefront") -> LevelTarget:
        """The dataset `name` for the sampler; `order` keys its frontier ring (a resume must keep it)."""
        spec = next(s for s in self.specs if s.name == name)
        return LevelTarget(self, spec, to_file or (lambda values, cube, index: values), order)

    def mark_all_done(self) -> None:
        """Flag every patch of every dataset done: the file was filled whole (merged from workers' shards)."""
        for spec in self.specs:
            flags = self.h5["progress/" + spec.name.replace("/", "_")]
            flags[()] = np.ones(flags.shape, np.uint8)

    def flushed_wave(self, generated: bool = True) -> None:
        """After a wave: flush, and put a new file in place once it holds generated content.

        A file that replaces an existing one waits for `finish`.
        """
        self.h5.flush()
        if not self.placed and generated and not self.replacing:
            os.replace(self.tmp, self.path)
            self.placed = True

    def finish(self) -> None:
        self.h5.attrs["complete"] = True
        self.h5.flush()
        if not self.placed:
            os.replace(self.tmp, self.path)
            self.placed = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.h5 is not None:
            self.h5.close()
        if not self.placed and self.tmp is not None and self.tmp.exists():
            self.tmp.unlink()


# Attributes that later versions record, with the value a file written before them was written at
# (a function of the value now): those files sampled every latent as trained.
IMPLIED_BEFORE = {"latent_scales": lambda scales: [1.0] * len(scales)}


def check_attrs(path: Path, stored, attrs: dict, checked: tuple[str, ...], labels: dict[str, str]) -> None:
    """InputError naming the first of `checked` whose value in `attrs` differs from `stored` (a resume's check).

    `stored`: a sample file's attributes, or a mapping of `encode_attr` values
    (a sampling run's plan on workers); `labels` name an attribute as the user
    sets it ("--n" for n_cubes). An attribute of `IMPLIED_BEFORE` missing from
    `stored` has its implied value.
    """
    for key in checked:
        value, found = _attr(attrs[key]), stored.get(key)
        if found is None and key in IMPLIED_BEFORE:
            found = _attr(IMPLIED_BEFORE[key](attrs[key]))
        if found is None or value != _decode(found):
            found = "(none)" if found is None else _decode(found)
            if key in labels:
                raise InputError(f"--resume: {path} was written with {labels[key]} {found}, not {value}")
            raise InputError(f"--resume: {path} was written with {key}={found!r}, not {value!r}")


def encode_attr(value):
    """An attribute as a sample file stores it (structured values as JSON strings; `check_attrs` compares these)."""
    return _attr(value)


def _size(nbytes: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000


def _attr(value):
    """Attributes are stored as HDF5 scalars or, for anything structured, as JSON strings."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value
