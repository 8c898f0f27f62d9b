"""The shards of a sample made on workers, and their merge into the one sample file.

Workers (`workers`) write into a directory beside the output: for `samples.h5`,

    samples.h5.parts/plan.json           {"n_cubes": N, "ranges": [[a, b], ...], "attrs": {...}}
    samples.h5.parts/cubes-<a>-<b>.h5    cubes a .. b-1: a sample file (`writer`) with
                                         attributes n_cubes = b - a and first_cube = a

`plan.json` fixes the cube ranges when the run starts, so a `--resume` with
another number of workers finishes the same shards; its `attrs` (the
output's attributes, as the file stores them) are what a resume is checked
against. A shard is resumable like any sample file, wave by wave.

Once every shard is complete, `merge` copies them, range by range and in
slabs of at most `BLOCK` values (bounded memory for cubes of any size), into
the output under a temporary name; the output is renamed into place only
once it is complete, then the directory is removed. The output is then the
file one process writes for the same runs and seed: the same datasets, chunks,
flags and attributes.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np

from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file
from nbgan_app.sampling.writer import DatasetSpec, SampleFile, encode_attr

PLAN = "plan.json"
BLOCK = 2**24  # values copied at once by `merge` (64 MiB of float32)


def parts_dir(out: str | Path) -> Path:
    """The shard directory of the output `out`: `<out>.parts` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """`n` cubes in at most `parts` contiguous, non-empty ranges [a, b) whose sizes differ by at most one."""
    parts = min(parts, n)
    size, extra = divmod(n, parts)
    ranges, start = [], 0
    for k in range(parts):
        stop = start + size + (k < extra)
        ranges.append((start, stop))
        start = stop
    return ranges


def shard_path(parts: Path, first: int, stop: int) -> Path:
    """The shard of cubes first .. stop-1."""
    return parts / f"cubes-{first:06d}-{stop - 1:06d}.h5"


def write_plan(parts: Path, n: int, ranges: list[tuple[int, int]], attrs: dict) -> None:
    """Create the shard directory (its parent must exist) with its plan."""
    parts.mkdir()
    plan = {"n_cubes": n, "ranges": [list(r) for r in ranges], "attrs": {k: encode_attr(v) for k, v in attrs.items()}}
    with atomic_file(parts / PLAN) as tmp:
        tmp.write_text(json.dumps(plan, indent=1))


def read_plan(parts: Path) -> dict:
    """The plan of a shard directory; InputError if it has none that reads."""
    try:
        plan = json.loads((parts / PLAN).read_text())
        plan["ranges"] = [tuple(r) for r in plan["ranges"]]
        return plan
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"--resume: {parts} has no readable {PLAN} (not a run on workers?); "
                         "remove it, or pass --overwrite to start anew") from None


def _copy(src: h5py.Dataset, dst: h5py.Dataset, axis: int, offset: int) -> None:
    """dst[..., offset + k, ...] = src[..., k, ...] along `axis` (the cubes), at most BLOCK values at a time.

    The axes after `axis` are the cube's (or its ring's); they are cut along the first of them.
    """
    rest = src.shape[axis + 1:]
    step = max(1, BLOCK // math.prod(rest[1:]))
    for index in np.ndindex(*src.shape[:axis + 1]):
        target = index[:axis] + (index[axis] + offset,)
        for start in range(0, rest[0], step):
            dst[target + (slice(start, start + step),)] = src[index + (slice(start, start + step),)]


def merge(parts: Path, ranges: list[tuple[int, int]], out: Path, specs: list[DatasetSpec], n: int, attrs: dict,
          box: float | None, overwrite: bool) -> None:
    """Copy the complete shards of `parts` into the sample file `out`, put it in place, remove `parts`.

    `out` appears (or replaces an old one, with `overwrite`) only once every
    cube is in it; until then the shards stay, for a `--resume`.
    """
    with SampleFile(out, specs, n, attrs, overwrite=overwrite) as final:
        if box is not None:
            final.h5["data"].attrs["box_size"] = box
        for first, stop in ranges:
            path = shard_path(parts, first, stop)
            with h5py.File(path, "r") as shard:
                if not bool(shard.attrs.get("complete", False)):
                    raise RuntimeError(f"shard {path} is not complete, yet its task ended without an error")
                for spec in specs:
                    _copy(shard[spec.name], final.h5[spec.name], 0, first)
                    if spec.frontier:  # (slots, cubes, ...): the ring one process leaves at its end
                        _copy(shard[spec.frontier_name], final.h5[spec.frontier_name], 1, first)
        final.mark_all_done()
        final.finish()
    shutil.rmtree(parts)
