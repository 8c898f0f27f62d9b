"""The real cubes a run was trained on, found from its config.json alone (never simulated here).

The dashboard compares generated cubes with the real ones of the run's config:
its data directory, or its simulation cache. The config, and the project root
its relative paths resolve against, are read as sampling reads them
(`run_setup.read_run`). Nothing here simulates or writes: a missing cache is a
message, not a multi-minute simulation inside the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbgan_app import rundir
from nbgan_app.errors import InputError
from nbgan_app.stats.scores import FLOOR_MIN
from tui.runs import file_key


def run_scale_and_config(run_dir: Path):
    """(scale name, Config) of the run from config.json, or a one-line message."""
    from nbgan_app.run_setup import read_run

    try:
        return read_run(Path(run_dir))
    except (InputError, TypeError, ValueError, KeyError) as exc:
        return f"{Path(run_dir).name}: config.json: {exc}"[:160]


def run_config(run_dir: Path):
    """The run's Config from config.json (with the right project root), or a one-line message."""
    found = run_scale_and_config(run_dir)
    return found if isinstance(found, str) else found[1]


@dataclass
class RealCubes:
    """The cube files of a run's data, in sorted order; the last `held_out` are held out of training."""

    files: list[Path]
    held_out: int
    box_size: float | None
    side: int  # the full-resolution grid, pyramid.sizes[0]

    def for_scores(self) -> tuple[list[Path], str]:
        """The real set to score samples against, and a note saying which one and why.

        The held-out cubes when there are enough for the floor; otherwise all the cubes of
        the data (training ones included, as the note says), since a floor needs 4.
        """
        held = self.files[len(self.files) - self.held_out:] if self.held_out else []
        if len(held) >= FLOOR_MIN:
            return held, f"real: the {len(held)} held-out cubes"
        note = f"real: all {len(self.files)} cubes of the data (only {len(held)} held out)"
        if len(self.files) < FLOOR_MIN:
            note += f"; no real-vs-real floor: it needs >= {FLOOR_MIN} real cubes"
        return list(self.files), note


def real_cubes(run_dir: Path) -> RealCubes | str:
    """The real cube files of a run's config, or a message (no config, cache not simulated yet...)."""
    config = run_config(run_dir)
    if isinstance(config, str):
        return config
    data = config.data
    where = data.simulation.cache if data.simulation is not None else data.dir
    if not where:
        return "the run's config names no data"
    from nbgan_app.cubes import list_cube_files

    try:
        files = list_cube_files([config.resolve(where)])
    except (InputError, OSError) as exc:
        return f"real cubes: {exc}"[:160]
    return RealCubes(files, min(data.held_out, len(files)), data.declared_box_size(), config.pyramid.sizes[0])


_level_cache: dict[tuple, np.ndarray | str] = {}


def real_level_cube(run_dir: Path) -> np.ndarray | str:
    """The first held-out real cube at the run's level (counts, (S, S, S)): what its samples imitate.

    Block means in transformed space mapped back to counts, as the trainer's evaluation
    does; cached on config.json's size and mtime, since the slice view asks every refresh.
    """
    key = (Path(run_dir), file_key(Path(run_dir) / rundir.CONFIG))
    if key not in _level_cache:
        _level_cache.clear()  # one cube at a time: the selected run's
        _level_cache[key] = _find_level_cube(Path(run_dir))
    return _level_cache[key]


def _find_level_cube(run_dir: Path) -> np.ndarray | str:
    read = run_scale_and_config(run_dir)
    if isinstance(read, str):
        return read
    scale, config = read
    found = real_cubes(run_dir)
    if isinstance(found, str):
        return found
    held = found.files[len(found.files) - max(found.held_out, 1)]
    return _load_level(config, held, scale, found.box_size)


def _load_level(config, path: Path, scale: str, box_size: float | None) -> np.ndarray | str:
    from nbgan_app.cubes import load_cubes
    from nbgan_app.pyramid import level_of
    from nbgan_app.transforms import backward

    try:
        counts, _ = load_cubes([path], box_size)
        return backward(level_of(config, counts, config.level_size(scale)), config.transform)[0]
    except (InputError, OSError, ValueError, KeyError) as exc:
        return f"{path.name}: {exc}"[:160]


def score_in_process(real_files: list[Path], fake_file: Path, box_size: float | None) -> dict:
    """Statistics of the samples against the real files, without the floor (too few real cubes for it).

    Returns {"real", "fake", "scores"} as the statistics panel shows it; "scores" is the
    `stats.scores.compare` result without "floor", or {} when a set has under 2 cubes.
    Raises InputError on unreadable or mismatched files (the caller shows the message).
    """
    from nbgan_app.cubes import common_box_size, load_cubes
    from nbgan_app.stats.scores import compare
    from nbgan_app.stats.summary import summary

    real, real_box = load_cubes(real_files, box_size)
    fake, fake_box = load_cubes([fake_file])
    box = common_box_size(None, real_box, fake_box)
    if real.shape[1:] != fake.shape[1:]:
        raise InputError(f"samples are {fake.shape[1]}^3 but the real cubes {real.shape[1]}^3: "
                         f"sample at size {real.shape[1]} to compare")
    pair = {"real": summary(real, box), "fake": summary(fake, box), "scores": {}}
    if len(real) >= 2 and len(fake) >= 2:
        pair["scores"] = compare(real, fake, box, floor=False)
    return pair
