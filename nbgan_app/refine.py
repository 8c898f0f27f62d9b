"""A run's second stage: on from its best generator, at lower learning rates.

GAN training does not settle: the demo's M1 was best on its monitor cubes at
step 1500 and several times worse by 2000, at the same rate. Trained on from
that best generator at a tenth of the rate, it improved on all three
statistics on the validation boxes (docs/quality.md). A scale section's
`refine_at` (a generator step on a checkpoint boundary, 0: none) and
`refine_rate` plan that stage. At step `refine_at`, once:

- the generator (and the moving average of its weights, where one is kept)
  takes the weights of the run's best generator so far (`best.read_best`;
  where the run has none yet, it keeps its own);
- the critic and both optimizers' moments stay as they are;
- both learning rates become the config's times `refine_rate`;
- an up-scaler's generator losses take the second stage's weights
  (`refine_count_weight`, `refine_spectrum_weight`), unless `refine_losses_at`
  starts them at a later checkpoint step (`losses_at`), and again at every
  resume at or after that step (`resume`);

then the switch is checkpointed at that step, replacing the checkpoint the
first stage wrote there. From the switch on, the monitor scores the generator
every `refine_eval_every` steps where that is set (`eval_every`).

The optimizers keep their learning rates among their variables, so a
checkpoint says by itself whether its run has switched: rates below the
config's (`refine_rate` < 1). A resume is therefore exact from any
checkpoint: one before the switch trains up to it and switches the same way
(a killed switch leaves the first stage's checkpoint at that step, and the
resume switches from it); one after it restores the lowered rates with
everything else. A run trained past `refine_at` at the full rates (planned
later, or not at all) is refused: its second stage could not start where the
plan says.
"""

from __future__ import annotations

import math
from pathlib import Path

from nbgan_app import best, checkpoints, scales
from nbgan_app.config import Config
from nbgan_app.errors import InputError
from nbgan_app.scales import Scale


def _pairs(config: Config, gan) -> tuple:
    """(optimizer, its first-stage learning rate) for the critic, then the generator."""
    train = config.train
    return ((gan.d_optimizer, train.critic_learning_rate), (gan.g_optimizer, train.generator_learning_rate))


def switched(config: Config, gan) -> bool:
    """Whether the GAN's learning rates (restored from a checkpoint) are already the second stage's."""
    import keras  # not at the top: training imports this module before `nbgan train --device` takes effect

    # through numpy: under TensorFlow's mirrored strategy the rate's value is a MirroredVariable,
    # which float() refuses
    return any(not math.isclose(float(keras.ops.convert_to_numpy(optimizer.learning_rate)), rate, rel_tol=1e-5)
               for optimizer, rate in _pairs(config, gan))


def losses_at(config: Config, scale: str | Scale) -> int:
    """The generator step the second stage's losses start at: `refine_losses_at`, else the switch
    (`refine_at`; 0 for a scale without a second stage)."""
    model = config.model(scale)
    return getattr(model, "refine_losses_at", 0) or model.refine_at


def start_losses(config: Config, scale: str | Scale, gan) -> None:
    """Give an up-scaler the second stage's count and spectrum loss weights, where it has any."""
    weights = config.second_stage_losses(scale)
    if any(weights):
        gan.set_generator_losses(*weights)


def losses_step(config: Config, scale: str | Scale, start: int, total: int) -> int | None:
    """The step after the switch at which this training call (from `start` to `total`) starts the
    second stage's losses (`start_losses`, before that step's training), or None: none planned after
    the switch, or not within the call (a resume at or past it sets them, `resume`)."""
    at = losses_at(config, scale)  # a later start needs loss weights (config check)
    return at if at != config.model(scale).refine_at and start < at < total else None


def resume(config: Config, scale: str | Scale, gan, start: int) -> None:
    """A run resumed at `start` in its second stage (its restored rates say so), at or past the step
    its losses start at, trains with those loss weights again: they are settings, not among a
    checkpoint's variables."""
    if switched(config, gan) and start >= losses_at(config, scale):
        start_losses(config, scale, gan)


def eval_every(config: Config, scale: str | Scale, step: int) -> int:
    """The monitor's spacing at generator `step`: `refine_eval_every` after the switch where it is
    set, else `train.eval_every`."""
    model = config.model(scale)
    if model.refine_eval_every and step > model.refine_at:  # set only with a second stage (config check)
        return model.refine_eval_every
    return config.train.eval_every


def switch_step(config: Config, scale: str | Scale, run_dir: Path, gan, start: int, total: int) -> int | None:
    """The step this training call switches at (`start` itself: before its first step), or None.

    None without a second stage, once switched, or when the call ends at or
    before `refine_at` (the stage then begins in a later call). InputError
    when the run stands past `refine_at` without having switched.
    """
    at = config.model(scale).refine_at
    if not at or switched(config, gan):
        return None
    if start > at:
        raise InputError(f"run {run_dir} is at step {start}, past {scales.scale(scale).section}.refine_at = {at}, "
                         f"and trained there at the first stage's rates; plan the second stage at step "
                         f"{start} or later, or use a new --run-dir")
    return at if at < total else None


def switch(config: Config, scale: str | Scale, run_dir: Path, gan, step: int, chief: bool = True) -> None:
    """Start the second stage at `step` (`switch_step`'s): the best generator's weights (where the run
    has none, its generator keeps its own), the lowered rates, and one line on stderr saying which.
    Every process of a run calls it at the same step; the chief's choice of best is everyone's
    (`distribute.agree`). InputError when the run's best is newer than `step` (left by an attempt
    that went past the switch and fell back before it)."""
    from nbgan_app.distribute import agree

    found = best.read_best(run_dir) if chief else None
    _, best_step = agree(found[0] if found else -1)  # the others pass -1: the chief's step wins
    if best_step > step:
        raise InputError(f"run {run_dir}: its best generator is from step {best_step}, after the second stage's "
                         f"switch at step {step}, so the second stage cannot start from the generator an "
                         f"uninterrupted run started from; use a new --run-dir")
    if best_step >= 0:
        directory = Path(run_dir) / best.BEST / checkpoints.step_name(best_step)
        gan.load_generator(directory / checkpoints.GENERATOR_FILE)
    rate = config.model(scale).refine_rate
    for optimizer, first in _pairs(config, gan):
        optimizer.learning_rate = first * rate
    if losses_at(config, scale) == step:
        start_losses(config, scale, gan)
    if chief:
        source = f"its best generator (step {best_step})" if best_step >= 0 else "its own generator (no best yet)"
        checkpoints.note(f"run {run_dir}: second stage from step {step}: {source}, learning rates x{rate:g}")
