"""Settings of the evaluation study: a frozen dataclass read from the `[study]` table of a TOML file.

Parsed with the same strict loader as run configs (`config.from_table`): an unknown
key or a wrong type is an InputError naming it. configs/study.toml holds the
defaults below; `nbgan evaluate --study FILE` reads another.

Budgets. Each model of the study (M3, M2, the M1 of every architecture) trains
for `minutes_per_model` minutes of wall-clock time or `max_steps` generator
steps, whichever ends first. The uni-scale baseline Mu gets
`uni_budget_factor` times that (3 = the chain's three models together), so the
chain and Mu are compared on the same compute budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nbgan_app.config import ARCHITECTURES, from_table, read_toml
from nbgan_app.errors import InputError
from nbgan_app.stats.scores import FLOOR_MIN


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains, generates and scores."""

    eval_boxes: int = 32  # held-out PM boxes, fresh seeds never used for training (>= 4: the floor needs halves of 2)
    n_fake: int = 32  # cubes generated per method
    minutes_per_model: float = 12.0  # wall-clock training budget of one model
    max_steps: int = 100_000  # step budget of one model (whichever of the two ends first)
    uni_budget_factor: float = 3.0  # Mu's budget in units of one model's (3 = the whole chain's)
    architectures: tuple[str, ...] = ARCHITECTURES  # M1 architectures compared in section 2
    psd_bins: str = "log"  # "log" (released) or "linear"
    floor_splits: int = 20  # random half-splits of the held-out set for the real-vs-real floor
    seed: int = 0  # noise of the generators and the mock


@dataclass(frozen=True)
class StudyFile:
    study: StudyConfig = field(default_factory=StudyConfig)


def validate_study(study: StudyConfig) -> StudyConfig:
    """Raise InputError naming the first impossible setting."""
    if study.eval_boxes < FLOOR_MIN:
        raise InputError(f"study.eval_boxes: expected >= {FLOOR_MIN} (the floor compares halves of 2). "
                         f"Received: {study.eval_boxes}")
    if study.n_fake < 2:
        raise InputError(f"study.n_fake: expected >= 2. Received: {study.n_fake}")
    for key in ("minutes_per_model", "max_steps", "uni_budget_factor", "floor_splits"):
        if not getattr(study, key) > 0:
            raise InputError(f"study.{key}: expected > 0. Received: {getattr(study, key)}")
    if not study.architectures or len(set(study.architectures)) != len(study.architectures):
        raise InputError(f"study.architectures: expected distinct names. Received: {list(study.architectures)}")
    for name in study.architectures:
        if name not in ARCHITECTURES:
            raise InputError(f"study.architectures: expected names from {', '.join(ARCHITECTURES)}. "
                             f"Received: {name!r}")
    if study.psd_bins not in ("log", "linear"):
        raise InputError(f"study.psd_bins: expected log or linear. Received: {study.psd_bins!r}")
    return study


def load_study(path: str | Path | None) -> StudyConfig:
    """The `[study]` settings of `path`, or the defaults when `path` is None."""
    if path is None:
        return validate_study(StudyConfig())
    return validate_study(from_table(StudyFile, read_toml(path, "study settings file")).study)
