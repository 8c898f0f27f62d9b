"""Reading what the dashboard shows of samples: slices of cubes and statistics JSON.

Only reads; every function returns None (or a message) instead of raising on a
missing, incomplete or corrupt file, because the trainer or the sampler may be
writing it at that moment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbgan_app import rundir
from nbgan_app.stats import registry


def read_slice(source: Path | np.ndarray, index: int, axis: int = 0, item: int = 0) -> tuple[np.ndarray, int] | str:
    """Slice `index` along `axis` of cube `item` of an HDF5 cube file (or of an array), and the cube side.

    `source` holds one cube (S, S, S) or a batch (N, S, S, S). Returns (2-D float32 counts,
    side), or a one-line message when it cannot be shown. A sample file with attribute
    complete=False (a sampler still writing) is shown anyway, with whatever cubes it holds.
    """
    import h5py

    if isinstance(source, np.ndarray):
        return _slice(source, index, axis, item)
    try:
        with h5py.File(source, "r") as f:
            return _slice(f["data"], index, axis, item)
    except (OSError, KeyError, ValueError, IndexError) as exc:
        return f"{Path(source).name}: {type(exc).__name__}: {exc}"[:120]


def _slice(data, index: int, axis: int, item: int) -> tuple[np.ndarray, int] | str:
    """Read one 2-D slice of an h5py dataset or array of one cube or a batch of cubes."""
    cube_shape = data.shape[1:] if len(data.shape) == 4 else data.shape
    if len(cube_shape) != 3:
        return f"data has shape {data.shape}, not cubes"
    side = cube_shape[0]
    where: list = [slice(None)] * 3
    where[axis] = int(np.clip(index, 0, side - 1))
    array = data[(item, *where)] if len(data.shape) == 4 else data[tuple(where)]
    return np.asarray(array, dtype=np.float32), side


def is_complete(path: Path) -> bool | None:
    """The `complete` attribute of a sample file (True when absent), None if unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", True))
    except OSError:
        return None


def check_stats(stats) -> bool:
    """Whether `stats` has the `stats --json` layout with every statistic of the registry."""
    if not isinstance(stats, dict):
        return False
    for spec in registry.STATISTICS:
        entry = stats.get(spec.name)
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in (spec.axis, "mean")):
            return False
    return True


def read_latest_stats(run_dir: Path) -> dict | str:
    """samples/latest_stats.json as {"real", "fake", "scores"}, or a message when absent or malformed."""
    return read_stats_pair(Path(run_dir) / rundir.SAMPLES / rundir.LATEST_STATS)


def from_compare(result: dict) -> dict:
    """An `nbgan compare` JSON ({stat: {axis, "real", "fake", scores, "floor"}}) as {"real", "fake", "scores"}."""
    pair: dict = {"real": {"n_cubes": result.get("n_real")}, "fake": {"n_cubes": result.get("n_fake")},
                  "scores": result}
    for spec in registry.STATISTICS:
        block = result.get(spec.name)
        if not isinstance(block, dict):
            continue
        axis = {spec.axis: block[spec.axis]} if spec.axis in block else {}
        for side in ("real", "fake"):
            if isinstance(block.get(side), dict):
                pair[side][spec.name] = {**axis, **block[side]}
    return pair


def read_stats_pair(path: Path) -> dict | str:
    """{"real", "fake", "scores"} from latest_stats.json or from an `nbgan compare` JSON; else a message."""
    payload = rundir.read_json(path)
    if isinstance(payload, dict) and "real" not in payload and "psd" in payload:
        payload = from_compare(payload)
    if payload is None:
        return f"no statistics yet ({path.name} missing)" if not path.exists() else f"{path.name} is corrupt"
    if not (isinstance(payload, dict) and check_stats(payload.get("real")) and check_stats(payload.get("fake"))):
        return f"{path.name} lacks real/fake statistics"
    return payload


def centres(stat: dict, name: str) -> np.ndarray:
    """x values of statistic `name`: its "k" axis as it is, or the centres of its bin "edges"."""
    spec = registry.get(name)
    axis = np.asarray(stat[spec.axis], dtype=float)
    n_bins = len(stat["mean"])
    if spec.axis == "edges" and len(axis) != n_bins + 1:
        return axis[:n_bins]  # not edges of these bins (a file being written): show what lines up
    return spec.bin_x(axis)


def fractional_difference(real: dict, fake: dict) -> np.ndarray:
    """(fake - real) / real per bin; NaN where real is 0 (undefined: such bins are not drawn)."""
    r = np.asarray(real["mean"], dtype=float)
    f = np.asarray(fake["mean"], dtype=float)[: len(r)]
    r = r[: len(f)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r != 0, (f - r) / r, np.nan)


def frac_errors(scores) -> dict[str, tuple[float, float | None]]:
    """Per statistic of a scores block (`stats.scores.compare`), (median fractional error, its floor):
    the median over bins of |fake mean - real mean| / real mean, and the same between halves of the real
    set (None without a floor). Statistics without a finite median are left out."""
    found: dict = {}
    if not isinstance(scores, dict):
        return found
    for name in registry.names():
        block = scores.get(name)
        if not isinstance(block, dict) or not _finite(block.get("median_abs_frac_diff")):
            continue
        floor = ((block.get("floor") or {}).get("median_abs_frac_diff") or {}).get("mean")
        found[name] = (float(block["median_abs_frac_diff"]), float(floor) if _finite(floor) else None)
    return found


def percent(fraction: float) -> str:
    """A fraction as a percentage with two significant figures below 10%: 0.083 -> `8.3%`, 0.5 -> `50%`."""
    value = 100 * fraction
    return f"{value:.0f}%" if value >= 9.95 else f"{value:.1f}%"


def format_errors(errors: dict[str, tuple[float, float | None]], sep: str = "  ") -> str:
    """`PSD 8.3% (floor 9.1%)  mass 3.0% (floor 2.2%)  ...`: lower is better, and within the floor is as
    good as two halves of the real set agree."""
    parts = []
    for name, (error, floor) in errors.items():
        label = registry.get(name).label
        parts.append(f"{label} {percent(error)}" + (f" (floor {percent(floor)})" if floor is not None else ""))
    return sep.join(parts)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
