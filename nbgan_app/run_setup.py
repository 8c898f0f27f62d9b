"""A run directory's config.json: creating it, checking an existing one belongs to this run, reading it back.

`check_run_dir` makes every check and creates nothing, so `train` can refuse a
bad run directory before it loads data; `prepare_run_dir` checks, then creates.

config.json = {"config": `config.to_dict` of the resolved config, "run":
{"scale", "backend", "config_path", "root", "created", "argv"}}.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nbgan_app import rundir, scales
from nbgan_app.config import Config, parse_saved_config, project_root, to_dict
from nbgan_app.errors import InputError
from nbgan_app.outputs import check_output_dir


# [train] keys a resume may change: the step budget, and how often, with how many samples and with what
# mean-count guard the monitor scores and keeps the generator (evaluating draws on no training
# randomness, so none of them changes a step)
_RESUMABLE_TRAIN_KEYS = ("steps", "eval_every", "eval_samples", "best_count_tolerance")
# keys of the scale's section a resume may change: the second stage is planned like the step budget; a run
# already past the step it names is refused at resume (`nbgan_app.refine.switch_step`), and one already
# switched keeps the rates it restores and trains on with the second stage's loss weights, their start and
# monitor spacing it is given (`record_plan` writes them into its config.json)
_RESUMABLE_MODEL_KEYS = ("refine_at", "refine_rate", "refine_eval_every", "refine_count_weight",
                         "refine_spectrum_weight", "refine_losses_at")


def _comparable(table: dict, scale: str) -> dict:
    """The config without settings a resume may change: `_RESUMABLE_TRAIN_KEYS`, the scale's
    `_RESUMABLE_MODEL_KEYS`, the demo's own settings (steps per scale for `nbgan demo --train`, output
    place), and the other scales' architecture sections, none of which this scale's training reads."""
    others = {s.section for s in scales.ALL} - {scales.scale(scale).section}
    table = {k: dict(v) if isinstance(v, dict) else v for k, v in table.items() if k != "demo" and k not in others}
    for key in _RESUMABLE_TRAIN_KEYS:
        table.get("train", {}).pop(key, None)
    for key in _RESUMABLE_MODEL_KEYS:
        table.get(scales.scale(scale).section, {}).pop(key, None)
    return table


def _as_written_now(table: dict, run_dir: Path) -> dict:
    """A saved config table as `to_dict` writes it today: defaults of keys added since filled in,
    other sections' model keys of older run directories dropped (`parse_saved_config`)."""
    try:
        return to_dict(parse_saved_config(table))
    except InputError as exc:
        raise InputError(f"run {run_dir} has a config this version cannot read ({exc}); use a new --run-dir") from None


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        elif a.get(key) != b.get(key):
            return f"{prefix}{key}"
    return ""


def check_run_dir(config: Config, scale: str, run_dir: Path, backend: str, parents: bool = True,
                  lock: bool = True) -> Path:
    """Every check `prepare_run_dir` makes, creating and writing nothing.

    InputError when `run_dir` is a file or cannot be written or made, when it
    holds a run of another scale, backend or config (the step budget, the
    [demo] section and other scales' architecture sections may differ), or
    when another process holds its lock (unless not `lock`: the other processes
    of a multi-process run, whose chief holds it).
    """
    run_dir = Path(run_dir)
    # without parents, a missing run directory's parent must exist: a typo in --run-dir names it
    check_output_dir(run_dir, parents, what="run directory")
    path = run_dir / rundir.CONFIG
    if path.exists():
        saved = rundir.read_json(path)
        if not isinstance(saved, dict) or not isinstance(saved.get("run"), dict) or "config" not in saved:
            raise InputError(f"{path} is corrupt; use a new --run-dir")
        run = saved["run"]
        if run.get("scale") != scale:
            raise InputError(f"run {run_dir} trains scale {run.get('scale')}, not --scale {scale}")
        if run.get("backend") != backend:
            raise InputError(f"run {run_dir} was trained on the {run.get('backend')} backend, not {backend} "
                             f"(set KERAS_BACKEND={run.get('backend')})")
        diff = _first_difference(_comparable(_as_written_now(saved["config"], run_dir), scale),
                                 _comparable(to_dict(config), scale))
        if diff:
            raise InputError(f"run {run_dir} was made with a different config ({diff} differs); use a new --run-dir")
    if lock and run_dir.is_dir() and rundir.is_locked(run_dir):
        raise InputError(f"run {run_dir} is locked: another process is training it")
    return run_dir


def prepare_run_dir(config: Config, scale: str, run_dir: Path, backend: str, parents: bool = True) -> Path:
    """Check `run_dir` (`check_run_dir`), then create it with config.json where it is new.

    `parents` creates missing parent directories too (a layout nbgan owns, such
    as checkpoints/<config>-<scale>); without it the parent must exist.
    """
    run_dir = check_run_dir(config, scale, run_dir, backend, parents)
    try:
        run_dir.mkdir(parents=parents, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
    path = run_dir / rundir.CONFIG
    if not path.exists():
        rundir.write_json_atomic(path, {
            "config": to_dict(config),
            "run": {"scale": scale, "backend": backend, "config_path": config.source, "root": config.root,
                    "created": time.time(), "argv": sys.argv},
        })
    return run_dir


def record_plan(config: Config, scale: str, run_dir: Path) -> None:
    """Write the keys a resume may change (`_RESUMABLE_TRAIN_KEYS`, the scale's `_RESUMABLE_MODEL_KEYS`) into the
    run's config.json where this config changed them, so that the file names the plan the run goes on under
    (a second stage planned at a resume included). Called once training is about to start: a refused resume
    leaves the file as it was. The rest of the file, the run's record, is never rewritten."""
    path = run_dir / rundir.CONFIG
    saved = rundir.read_json(path)
    now = to_dict(config)
    changed = False
    for section, keys in (("train", _RESUMABLE_TRAIN_KEYS), (scales.scale(scale).section, _RESUMABLE_MODEL_KEYS)):
        table = saved["config"].setdefault(section, {})
        for key in (k for k in keys if k in now[section]):  # M3's section has no loss weights
            if table.get(key) != now[section][key]:
                table[key], changed = now[section][key], True
    if changed:
        rundir.write_json_atomic(path, saved)


def read_run(run_dir: Path) -> tuple[str, Config]:
    """(scale name, Config) of the run directory `run_dir`, from its config.json.

    Relative data paths resolve against the project root the run was trained
    from: the recorded `run.root`, else the root of the recorded config file
    (`config.project_root`), else the run directory itself. A shipped preset's
    runs were trained on another machine: theirs resolve against this
    checkout (`presets.preset_root_for`). Raises InputError when config.json
    is missing or unreadable, or its config is not one.
    """
    from nbgan_app.presets import preset_root_for

    run_dir = Path(run_dir)
    saved = rundir.read_json(run_dir / rundir.CONFIG)
    run = saved.get("run") if isinstance(saved, dict) else None
    if not isinstance(run, dict) or "scale" not in run or not isinstance(saved.get("config"), dict):
        raise InputError(f"{run_dir} is not a run directory (no readable {rundir.CONFIG})")
    source = run.get("config_path") or ""
    root = preset_root_for(run_dir) or run.get("root") or (project_root(source) if source else run_dir)
    return str(run["scale"]), parse_saved_config(saved["config"], root=root, source=source)
