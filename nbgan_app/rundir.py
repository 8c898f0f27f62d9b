"""The run directory (docs/design.md, "Run directory"): the only channel between a
training process and anything that watches it (the dashboard, the sampler).

Layout of `checkpoints/<run>/`:
    config.json        the resolved config plus `run` metadata: scale, backend,
                       config path, command line (written once, at creation)
    metrics.jsonl      one JSON object per logged step (`step`, `time`,
                       `critic_loss`, `generator_loss`, `gradient_penalty`,
                       `wasserstein`, and statistic scores when evaluated)
    state.json         {"state": running|stopped|finished|failed, "step",
                       "pid", "error", "updated"}; rewritten atomically
    lock               held (fcntl) by the one process that trains this run
    checkpoints/       step-<N>/ directories, complete ones only (write, rename)
    samples/           latest.h5 (counts of the latest generated samples) and
                       latest_stats.json (their statistics and the real ones)

Readers must tolerate a half-written last line in metrics.jsonl (a writer
killed mid-line) and a run directory that vanishes while they read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Iterator

from nbgan_app.errors import InputError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
STATE = "state.json"
LOCK = "lock"
DEVICE = "device.json"  # the device the run was started on (nbgan_app.devices.record_device)
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
STATES = ("running", "stopped", "finished", "failed")
# the loss keys of every metrics.jsonl record: the trainer writes them, the dashboard plots them
LOSSES = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")
# the trainer's latest evaluation, under SAMPLES/: its generated cubes (counts) and their statistics
LATEST_SAMPLES = "latest.h5"
LATEST_STATS = "latest_stats.json"


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON via a temporary sibling and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None if it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_state(run_dir: Path, state: str, step: int, error: str | None = None) -> None:
    if state not in STATES:
        raise ValueError(f"Expected state in {STATES}. Received: state={state!r}")
    write_json_atomic(Path(run_dir) / STATE, {
        "state": state, "step": int(step), "pid": os.getpid(), "error": error, "updated": time.time(),
    })


def read_state(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / STATE)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_state(run_dir: Path) -> dict:
    """The state a watcher should show: a 'running' run whose process is gone is 'failed'."""
    state = read_state(run_dir) or {"state": "stopped", "step": 0, "pid": None, "error": None}
    if state.get("state") == "running" and not pid_alive(state.get("pid")):
        state = dict(state, state="failed", error=state.get("error") or "training process died")
    return state


def append_metrics(run_dir: Path, record: dict) -> None:
    """Append one record to metrics.jsonl and flush it to disk."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir: Path) -> list[dict]:
    """All complete records of metrics.jsonl; a truncated or corrupt line is skipped."""
    records = []
    try:
        lines = (Path(run_dir) / METRICS).read_text().splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def training_seconds(records: list[dict]) -> float:
    """Wall-clock seconds of training in metrics records: the gaps between logged steps, summed.

    A gap over 10 minutes is a stopped run and counts as none, so a run stopped and resumed is
    timed by what it trained, not by how long it waited.
    """
    times = [r["time"] for r in records if "time" in r]
    return float(sum(b - a for a, b in zip(times, times[1:]) if b - a < 600))


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop records after `last_step` (and any torn line): used on resume from a checkpoint."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return
    kept = [r for r in read_metrics(run_dir) if r["step"] <= last_step]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    os.replace(tmp, path)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock for the duration; InputError if another process holds it."""
    path = Path(run_dir) / LOCK
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(f"run {run_dir} is locked: another process is training it") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def is_locked(run_dir: Path) -> bool:
    """Whether some process holds the run's lock right now."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False
