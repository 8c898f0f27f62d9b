"""What the dashboard knows about runs, read from run directories only.

Everything here is plain Python (no Textual) and never raises on a run
directory that is missing, half-written or corrupt: the problem becomes the
`error` of the returned summary. Reads are cheap and cached on file size and
modification time, so polling every second costs next to nothing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from nbgan_app import best, checkpoints, devices, rundir
from tui.samples import frac_errors


@dataclass
class RunSummary:
    """One row of the run list."""

    path: Path
    name: str
    scale: str = "?"
    config: str = "?"
    backend: str = "?"
    step: int = 0
    state: str = "?"
    error: str | None = None
    pid: int | None = None
    scores: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)  # the `run` section of config.json
    device: str | None = None  # the device the run recorded (devices.DEVICE_FILE), None if it did not
    errors: dict = field(default_factory=dict)  # the latest evaluation's median fractional errors (frac_errors)
    best: dict = field(default_factory=dict)  # the kept best generator's meta.json (best.read_best_meta), {} if none


def file_key(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or None if it is missing: changes whenever the file does."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def best_key(path: Path) -> tuple:
    """Changes whenever the run's kept best does: the best/ directory's key and each step-<N>/meta.json's,
    with N (a replacing best has another N, even where coarse mtimes and sizes happen to match)."""
    try:
        listed = checkpoints.list_checkpoints(path, best.BEST)
    except OSError:  # best/ vanished while listed
        listed = []
    return file_key(path / best.BEST), tuple((step, file_key(d / checkpoints.META_FILE)) for step, d in listed)


class MetricsTail:
    """Incremental reader of metrics.jsonl: parses only complete lines appended since the last call.

    A torn last line (a writer killed mid-line) is left for the next call; a
    corrupt complete line is skipped; a file that shrinks (truncated on
    resume) or vanishes is re-read from the start.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / rundir.METRICS
        self.records: list[dict] = []
        self._offset = 0

    def update(self) -> bool:
        """Read what was appended; True when records changed."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            changed = bool(self.records)
            self.records, self._offset = [], 0
            return changed
        if size < self._offset:
            self.records, self._offset = [], 0
        if size == self._offset:
            return False
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        added = 0
        for line in chunk[:complete].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), (int, float)):
                self.records.append(record)
                added += 1
        return added > 0 or size < self._offset


def steps_per_second(records: list[dict], window: int = 10) -> float | None:
    """Training rate over the last `window` logged records (steps per wall-clock second)."""
    timed = [r for r in records[-window:] if isinstance(r.get("time"), (int, float))]
    if len(timed) < 2:
        return None
    dt = timed[-1]["time"] - timed[0]["time"]
    return (timed[-1]["step"] - timed[0]["step"]) / dt if dt > 0 else None


def last_scores(records: list[dict]) -> dict:
    """The statistic scores of the latest record that has any (keys beyond step, time and losses)."""
    skip = {"step", "time", *rundir.LOSSES}
    for record in reversed(records):
        scores = {k: v for k, v in record.items() if k not in skip and isinstance(v, (int, float))}
        if scores:
            return scores
    return {}


def format_best(meta: dict) -> str:
    """A kept best as `step · monitor error · xmean count ratio`, e.g. `1500 · 0.177 · x0.99`; "-" when
    there is none. The ratio is left out where meta.json lacks it (bests kept before runs recorded it)."""
    if not meta:
        return "-"
    try:
        text = f"{int(meta['step'])} · {float(meta['monitor_error']):.3f}"
    except (KeyError, TypeError, ValueError):
        return "?"
    ratio = meta.get("mean_count_ratio")
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio):
        text += f" · x{ratio:.2f}"
    return text


def format_scores(scores: dict, limit: int = 3) -> str:
    """The headline scores first (keys ending in `_score`), as `psd=0.12 mass_hist=0.3`."""
    keys = sorted(scores, key=lambda k: not k.endswith("_score"))[:limit]
    return " ".join(f"{k.removesuffix('_score')}={scores[k]:.3g}" for k in keys)


class RunWatcher:
    """Summaries of every run under a root directory, re-read only when a file changed."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[Path, tuple[tuple, RunSummary]] = {}
        self._tails: dict[Path, MetricsTail] = {}
        self._errors: dict[Path, tuple[tuple | None, dict]] = {}

    def tail(self, run_dir: Path) -> MetricsTail:
        return self._tails.setdefault(Path(run_dir), MetricsTail(run_dir))

    def scan(self) -> list[RunSummary]:
        """One summary per run directory (a directory holding config.json or state.json)."""
        try:
            dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
        except OSError:
            return []
        summaries = []
        for path in dirs:
            if not ((path / rundir.CONFIG).exists() or (path / rundir.STATE).exists()):
                continue
            summaries.append(self.summary(path))
        for gone in set(self._cache) - set(dirs):
            self._cache.pop(gone, None)
            self._errors.pop(gone, None)
        return summaries

    def summary(self, path: Path) -> RunSummary:
        tail = self.tail(path)
        tail.update()
        key = (file_key(path / rundir.CONFIG), file_key(path / rundir.STATE), len(tail.records),
               file_key(path / devices.DEVICE_FILE), file_key(path / rundir.SAMPLES / rundir.LATEST_STATS),
               best_key(path))
        cached = self._cache.get(path)
        if cached and cached[0] == key and cached[1].state != "running":
            return cached[1]
        summary = read_summary(path, tail.records, self.errors(path))
        self._cache[path] = (key, summary)
        return summary

    def errors(self, path: Path) -> dict:
        """The run's latest median fractional errors, re-read only when latest_stats.json changed (a
        running run's summary is rebuilt at every refresh; its evaluations are far apart)."""
        key = file_key(path / rundir.SAMPLES / rundir.LATEST_STATS)
        cached = self._errors.get(path)
        if cached is None or cached[0] != key:
            cached = (key, read_errors(path))
            self._errors[path] = cached
        return cached[1]


def read_errors(path: Path) -> dict:
    """The median fractional errors (`tui.samples.frac_errors`) of the run's samples/latest_stats.json."""
    latest = rundir.read_json(path / rundir.SAMPLES / rundir.LATEST_STATS)
    return frac_errors(latest.get("scores")) if isinstance(latest, dict) else {}


def read_summary(path: Path, records: list[dict], errors: dict | None = None) -> RunSummary:
    """Summarise one run directory; problems become `state="error"` with a message. `errors`: the run's
    median fractional errors when the caller has them, else read here."""
    summary = RunSummary(path=path, name=path.name)
    config = rundir.read_json(path / rundir.CONFIG)
    if not isinstance(config, dict):
        missing = not (path / rundir.CONFIG).exists()
        summary.state, summary.error = "error", "config.json missing" if missing else "config.json corrupt"
        return summary
    run = config.get("run") if isinstance(config.get("run"), dict) else {}
    summary.run = run
    summary.device = devices.read_device(path)
    summary.scale = str(run.get("scale", "?"))
    summary.config = Path(str(run.get("config", run.get("config_path", "?")))).name
    summary.backend = str(run.get("backend", "?"))
    if (path / rundir.STATE).exists() and rundir.read_state(path) is None:
        summary.state, summary.error = "error", "state.json corrupt"
    else:
        state = rundir.effective_state(path)
        summary.state = str(state.get("state", "?"))
        summary.error = state.get("error")
        summary.pid = state.get("pid")
        summary.step = int(state.get("step") or 0)
    if records:
        summary.step = max(summary.step, int(records[-1]["step"]))
    summary.scores = last_scores(records)
    summary.errors = read_errors(path) if errors is None else errors
    summary.best = best.read_best_meta(path) or {}
    return summary


def runs_by_device(summaries: list[RunSummary], snapshot: devices.Snapshot | None = None) -> dict[str, list[str]]:
    """device -> names of the running runs on it: the device each recorded, and for a run that recorded
    none (started from a shell without a choice), the GPU whose NVML process list holds its pid."""
    found: dict[str, list[str]] = {}
    gpus = snapshot.gpus if snapshot is not None else ()
    for summary in summaries:
        if summary.state != "running":
            continue
        used = [summary.device] if summary.device else [g.device for g in gpus if summary.pid in g.pids]
        for device in used:
            found.setdefault(device, []).append(summary.name)
    return found
