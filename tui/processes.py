"""Launching and signalling `nbgan` processes: the dashboard's only way to act on runs.

Each process starts in its own session (start_new_session=True), so closing
the dashboard, or a Ctrl+C in its terminal, never reaches training. Output
goes to a log file (append mode: a resumed run keeps its history). The
dashboard keeps the Popen objects only to reap children that exit, so a dead
trainer never lingers as a zombie that still looks alive.

A process started for a device ("gpu:N" or "cpu") gets that device's
environment (`nbgan_app.devices.device_env`: CUDA_VISIBLE_DEVICES and the
backends' memory settings); a training run records the choice in its run
directory before it starts, and a resume starts it on the same device.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbgan_app import devices, rundir

TRAIN_LOG = "train.log"
WAVE_LINE = re.compile(r"wave\s+(\d+)\s*/\s*(\d+)(?:\s+level\s+(\d+))?")
_children: list[subprocess.Popen] = []


def nbgan_command() -> list[str]:
    """The `nbgan` command of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "nbgan_app"]


def launch(args: list[str], log_path: Path, backend: str | None = None,
           device: str | None = None) -> subprocess.Popen:
    """Start `nbgan ARGS...` detached, its stdout and stderr appended to `log_path`, on `device`
    (None: wherever the environment puts it)."""
    env = devices.device_env(device) if device else dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            nbgan_command() + args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )
    _children.append(process)
    return process


def reap() -> None:
    """Collect children that exited (call periodically)."""
    _children[:] = [p for p in _children if p.poll() is None]


def train_args(config: str | Path, scale: str, run_dir: Path, steps: int | None) -> list[str]:
    args = ["train", "--config", str(config), "--scale", str(scale), "--run-dir", str(run_dir)]
    return args + (["--steps", str(int(steps))] if steps else [])


def start_training(config: str | Path, scale: str, run_dir: Path, backend: str | None,
                   steps: int | None = None, device: str | None = None,
                   snapshot: devices.Snapshot | None = None) -> subprocess.Popen:
    """`nbgan train` into `run_dir` (which the command creates or resumes), log in the run directory.

    With `device`, the choice is recorded in the run directory first (with the GPU's name from
    `snapshot`), then the process starts with that device's environment.
    """
    if device:
        devices.record_device(run_dir, device, snapshot)
    return launch(train_args(config, scale, run_dir, steps), Path(run_dir) / TRAIN_LOG, backend, device=device)


def resume_training(run_dir: Path) -> subprocess.Popen:
    """Start the same `nbgan train` again from the run's own metadata (config.json's `run` section)."""
    config = rundir.read_json(Path(run_dir) / rundir.CONFIG)
    run = config.get("run") if isinstance(config, dict) else None
    if not isinstance(run, dict) or not run.get("scale") or not (run.get("config") or run.get("config_path")):
        raise ValueError(f"{run_dir}: config.json has no usable `run` section; cannot resume")
    state = rundir.effective_state(run_dir)
    if state.get("state") == "running":
        raise ValueError(f"{Path(run_dir).name} is already running (pid {state.get('pid')})")
    return launch(train_args(run.get("config") or run["config_path"], run["scale"], run_dir, run_steps(run)),
                  Path(run_dir) / TRAIN_LOG, run.get("backend"), device=devices.read_device(run_dir))


def run_steps(run: dict) -> int | None:
    """The --steps a run was started with: `run.steps`, or parsed from its recorded command line."""
    if isinstance(run.get("steps"), int):
        return run["steps"]
    command = run.get("command") or run.get("argv") or []
    words = command.split() if isinstance(command, str) else [str(w) for w in command]
    for flag, value in zip(words, words[1:]):
        if flag == "--steps" and value.isdigit():
            return int(value)
    return None


def stop_training(run_dir: Path) -> int:
    """SIGTERM the run's trainer (it checkpoints, then writes state 'stopped'); returns the pid."""
    state = rundir.effective_state(run_dir)
    pid = state.get("pid")
    if state.get("state") != "running" or not pid:
        raise ValueError(f"{Path(run_dir).name} is not running (state {state.get('state')})")
    os.kill(int(pid), signal.SIGTERM)
    return int(pid)


@dataclass
class ChildJob:
    """A running `nbgan sample` or `nbgan compare`: its process, its output file and its log."""

    process: subprocess.Popen
    out: Path
    log: Path

    def progress(self) -> tuple[int, int, int | None] | None:
        """(wave, waves, level) of the last progress line in the log, or None before the first."""
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log) - 4096))
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        found = WAVE_LINE.findall(text)
        if not found:
            return None
        wave, waves, level = found[-1]
        return int(wave), int(waves), int(level) if level else None

    def log_tail(self, lines: int = 3) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_sampling(chain: list[Path], n: int, size: int | None, order: str, out: Path,
                   backend: str | None = None, device: str | None = None) -> ChildJob:
    """`nbgan sample --chain RUN3,RUN2,RUN1 ...` on `device`; progress lines go to OUT's log file."""
    args = ["sample", "--chain", ",".join(str(p) for p in chain), "--n", str(int(n)), "--out", str(out),
            "--order", order] + (["--size", str(int(size))] if size else [])
    log = Path(out).with_suffix(".log")
    return ChildJob(launch(args, log, backend, device=device), Path(out), log)


def start_compare(real: list[Path], fake: Path, out_json: Path, box_size: float | None = None) -> ChildJob:
    """`nbgan compare --real REAL... --fake FAKE --json OUT`: the scores with the real-vs-real floor.

    `box_size`: the data's box side in Mpc/h from the run's config; it wins over the files'
    attribute, as it must for the 3Dcosmo files, which carry none.
    """
    log = Path(out_json).with_suffix(".log")
    args = ["compare", "--real", *(str(p) for p in real), "--fake", str(fake), "--json", str(out_json)]
    if box_size is not None:
        args += ["--box-size", repr(float(box_size))]
    return ChildJob(launch(args, log), Path(out_json), log)
