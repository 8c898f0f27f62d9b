"""Training the study's models on equal budgets: wall-clock minutes or generator steps.

A model trains with `training.train` to the step budget; its `should_stop`
hook, a deadline, stops it at the first step boundary after the wall-clock
budget runs out (it checkpoints first). The time counted is the whole `train`
call (data loading and model building included), the same for every model, so
a budget spent during start-up still buys one step.

A ledger (`ledger.json` in the study's run root) records each finished
model's budget, time and steps, so a second `nbgan evaluate` reuses trained
models instead of training them again. A model whose training was
interrupted before it was recorded trains again from its last checkpoint,
with its whole budget.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def deadline(seconds: float) -> Callable[[], bool]:
    """A `should_stop` for `train`: true once `seconds` have passed (monotonic clock) since this call."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


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
    budget = spec.minutes * 60 - spent
    started = time.monotonic()  # the deadline's clock, so a stop it caused always counts as spent
    state = train(spec.config, spec.scale, Path(root) / spec.name, steps=spec.max_steps, progress=progress,
                  should_stop=deadline(budget))
    seconds = time.monotonic() - started
    if state["state"] == "stopped" and seconds < budget:
        raise KeyboardInterrupt  # stopped by the user (Ctrl-C, SIGTERM), not by the budget
    entry = {"scale": spec.scale, "architecture": spec.config.model(spec.scale).architecture,
             "minutes": spec.minutes, "max_steps": spec.max_steps, "seconds": round(spent + seconds, 1),
             "steps": int(state["step"]), "state": state["state"], "load_average": round(os.getloadavg()[0], 1)}
    ledger = read_ledger(root)
    ledger[spec.name] = entry
    rundir.write_json_atomic(Path(root) / LEDGER, ledger)
    return entry
