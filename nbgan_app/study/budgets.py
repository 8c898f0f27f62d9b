"""Training the study's models on equal budgets: wall-clock minutes or generator steps.

A model trains with `training.train` to the step budget; a timer stops it when
the wall-clock budget runs out by sending this process SIGTERM, which
`train` handles gracefully (it stops at the next step boundary and
checkpoints). The timer waits until train's own handler is installed, so a
budget that ends during start-up never kills the process. The time counted
is the whole `train` call (data loading and model building included), the
same for every model.

A ledger (`ledger.json` in the study's run root) records each finished
model's budget, time and steps, so a second `nbgan evaluate` reuses trained
models instead of training them again. A model whose training was
interrupted before it was recorded trains again from its last checkpoint,
with its whole budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nbgan_app import rundir
from nbgan_app.config import Config
from nbgan_app.scales import M1, M2, M3, MU
from nbgan_app.errors import InputError
from nbgan_app.study.settings import StudyConfig

LEDGER = "ledger.json"


@dataclass(frozen=True)
class ModelSpec:
    """One model the study trains: run name, scale, its config, and its budget."""

    name: str
    scale: str
    config: Config
    minutes: float
    max_steps: int


def study_config(config: Config, study: StudyConfig, architecture: str | None = None) -> Config:
    """`config` as the study trains it: the step budget, in-training evaluation only at the end,
    and (for section 2) another M1 architecture."""
    train = config.train
    # In-training statistics would spend the budget unevenly (patch models cost more to sample);
    # the study scores every model itself afterwards. A fixed interval (not one derived from the
    # budget) keeps the run's config, hence its run directory, valid when the budget changes.
    train = dataclasses.replace(train, steps=study.max_steps, eval_every=train.log_every * 10**6)
    config = dataclasses.replace(config, train=train)
    if architecture is not None:
        config = dataclasses.replace(config, m1=dataclasses.replace(config.m1, architecture=architecture))
    return config


def m1_name(architecture: str) -> str:
    return f"m1-{architecture}"


def model_specs(config: Config, study: StudyConfig) -> list[ModelSpec]:
    """Every model of the study: the chain (M3, M2, M1 of the config's architecture), Mu, and the
    M1 of each other architecture of `study.architectures`."""
    base = study_config(config, study)
    chain_m1 = config.m1.architecture
    specs = [ModelSpec(M3.section, M3.name, base, study.minutes_per_model, study.max_steps),
             ModelSpec(M2.section, M2.name, base, study.minutes_per_model, study.max_steps),
             ModelSpec(m1_name(chain_m1), M1.name, base, study.minutes_per_model, study.max_steps),
             ModelSpec(MU.section, MU.name, base, study.minutes_per_model * study.uni_budget_factor,
                       math.ceil(study.max_steps * study.uni_budget_factor))]
    for arch in study.architectures:
        if arch != chain_m1:
            specs.append(ModelSpec(m1_name(arch), M1.name, study_config(config, study, arch),
                                   study.minutes_per_model, study.max_steps))
    return specs


def _refuse_early_sigterm(signum, frame):
    raise KeyboardInterrupt  # a SIGTERM from outside before train() took over: stop the study


@contextlib.contextmanager
def wall_clock_budget(seconds: float) -> Iterator[None]:
    """Within the block, SIGTERM this process after `seconds`, once someone else handles SIGTERM.

    Works only in the main thread (Python's rule for signal handlers); elsewhere it does
    nothing, and the step budget alone applies. Restores the previous handlers on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _refuse_early_sigterm)
    done = threading.Event()

    def expire():
        if done.wait(seconds):
            return
        while signal.getsignal(signal.SIGTERM) is _refuse_early_sigterm:
            if done.wait(0.2):  # train() is still starting; its handler is not there yet
                return
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Thread(target=expire, name="study-budget", daemon=True)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def read_ledger(root: Path) -> dict:
    return rundir.read_json(Path(root) / LEDGER) or {}


def train_model(spec: ModelSpec, root: Path, progress: bool | None = None) -> dict:
    """Train `spec` into `root/<name>` within its budget (or reuse it); returns its ledger entry."""
    from nbgan_app.training import train

    entry = read_ledger(root).get(spec.name)
    spent = 0.0
    if entry:
        if entry.get("minutes") == spec.minutes and entry.get("max_steps") == spec.max_steps:
            return entry
        spent = float(entry["seconds"])  # a new budget: train on from the checkpoint for the rest of it
        if spent >= spec.minutes * 60 or entry["steps"] >= spec.max_steps:
            raise InputError(f"model {spec.name} in {root} was already trained past this budget "
                             f"({entry['seconds']} s, {entry['steps']} steps); use a new --out")
    started = time.time()
    with wall_clock_budget(spec.minutes * 60 - spent):
        state = train(spec.config, spec.scale, Path(root) / spec.name, steps=spec.max_steps, progress=progress)
    seconds = time.time() - started
    if state["state"] == "stopped" and seconds < spec.minutes * 60 - spent:
        raise KeyboardInterrupt  # stopped by the user (Ctrl-C, SIGTERM), not by the budget
    entry = {"scale": spec.scale, "architecture": spec.config.model(spec.scale).architecture,
             "minutes": spec.minutes, "max_steps": spec.max_steps, "seconds": round(spent + seconds, 1),
             "steps": int(state["step"]), "state": state["state"], "load_average": round(os.getloadavg()[0], 1)}
    ledger = read_ledger(root)
    ledger[spec.name] = entry
    rundir.write_json_atomic(Path(root) / LEDGER, ledger)
    return entry
