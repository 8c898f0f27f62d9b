"""A run's sampling-time latent scale: the spread its generator's latent is drawn with.

Sampling draws every latent from N(0, 1) (`sampling.noise`). A generator
sampled with s times that latent makes cubes with more variety for s > 1 and
less for s < 1 (the "truncation trick" of image GANs). The scale is a
property of one trained generator, not of a recipe: the demo's M3 makes too
few dense cells, and drawn at s = 1.15 the chain's mass and spectrum errors
fall on the validation boxes, while the residual up-scalers do best at s = 1
(docs/quality.md, "A latent scale at sampling").

`nbgan latent-scale` chooses s for one run of a chain on validation boxes and
writes its choice into the run directory:

    latent_scale.json   {"step": N, "latent_scale": s, "chain": "--chain as given", "chosen_on": "...",
                         "sampling_seeds": [...], "n_cubes": n, "table": [{"latent_scale": ..., "psd": ...}, ...]}

Sampling (`nbgan sample`, `nbgan upscale`, `nbgan demo`, the study) draws
the run's latents at s where the run samples from the generator of step N,
and at 1 otherwise (a later best generator has not been tuned). A sample file
records the scale of each run (`latent_scales`), and a resume must match it.
Training and its monitor never read it: the monitor scores the generator as
it was trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nbgan_app.errors import InputError
from nbgan_app.rundir import write_json_atomic

FILE = "latent_scale.json"


def check_scale(value, where: str) -> float:
    """`value` as a finite float > 0; InputError naming `where` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{where}: a latent scale must be a number > 0. Received: {value!r}")
    return float(value)


def read_choice(run_dir: str | Path) -> dict | None:
    """The run's latent_scale.json, or None without one; InputError if it is damaged."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is damaged ({exc}); remove it or choose again with `nbgan latent-scale`") from None
    step = record.get("step") if isinstance(record, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(f"{path}: expected a step (a whole number >= 0). Received: {step!r}")
    check_scale(record.get("latent_scale"), str(path))
    return record


def choice_for(run_dir: str | Path, step: int) -> dict | None:
    """The run's recorded choice if it was made for its generator of `step`, else None."""
    record = read_choice(run_dir)
    return record if record is not None and record["step"] == step else None


def current_choice(run_dir: str | Path) -> tuple[int, dict | None]:
    """(the step the run samples from now, the choice recorded for that generator or None)."""
    from nbgan_app.sampling.runs import checkpoint_of, load_run

    step = checkpoint_of(load_run(run_dir))[0]
    return step, choice_for(run_dir, step)


def scale_for(run_dir: str | Path, step: int) -> float:
    """The latent scale the run's generator of `step` is sampled with: its recorded choice, else 1."""
    record = choice_for(run_dir, step)
    return 1.0 if record is None else float(record["latent_scale"])


def write_choice(run_dir: str | Path, record: dict) -> Path:
    """Write `record` ({"step", "latent_scale", ...}) as the run's latent_scale.json, atomically."""
    path = Path(run_dir) / FILE
    write_json_atomic(path, record)
    return path
