"""Comparisons of training runs for the tests: checkpoint states, logged losses, and two runs trained alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbgan_app import checkpoints, rundir


def checkpoint_state(run_dir: Path, step: int) -> list[np.ndarray]:
    """Every variable of the run's checkpoint `step`, in variable order (`checkpoints.read_state`)."""
    return checkpoints.read_state(dict(checkpoints.list_checkpoints(run_dir))[step])


def newest_state(run_dir: Path) -> tuple[int, list[np.ndarray]]:
    """(step, variables) of the run's newest checkpoint."""
    step, path = checkpoints.latest_checkpoint(run_dir)
    return step, checkpoints.read_state(path)


def logged_losses(run_dir: Path) -> list[tuple]:
    """(step, critic loss, generator loss, gradient penalty) of each line of the run's metrics.jsonl."""
    return [(r["step"], r["critic_loss"], r["generator_loss"], r["gradient_penalty"])
            for r in rundir.read_metrics(run_dir)]


def assert_trained_alike(run_a: Path, run_b: Path, steps: int) -> None:
    """Both runs' newest checkpoints are at `steps` with equal variables, and their logged losses agree."""
    (step_a, vars_a), (step_b, vars_b) = newest_state(run_a), newest_state(run_b)
    assert step_a == step_b == steps and len(vars_a) == len(vars_b)
    for a, b in zip(vars_a, vars_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logged_losses(run_a), logged_losses(run_b), rtol=1e-4, atol=1e-6)
