"""The training loop: run directory, exact resume, guards. Runs on every backend."""

import json
from pathlib import Path

import numpy as np
import pytest

from nbgan_app import checkpoints, rundir
from nbgan_app.errors import InputError
from run_checks import assert_trained_alike, logged_losses, newest_state

pytestmark = pytest.mark.backends
ROOT = Path(__file__).resolve().parents[1]


def test_run_directory_contents(tiny_config, tiny_cubes, tmp_path):
    from nbgan_app.training import train

    state = train(tiny_config, "3", tmp_path / "run", steps=2, progress=False)
    run = tmp_path / "run"
    assert state["state"] == "finished" and state["step"] == 2
    saved = json.loads((run / "config.json").read_text())
    assert saved["run"]["scale"] == "3" and saved["config"]["pyramid"]["patch"] == 4
    records = rundir.read_metrics(run)
    assert [r["step"] for r in records] == [1, 2]
    for key in ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein", "time"):
        assert np.isfinite(records[-1][key])
    assert checkpoints.latest_checkpoint(run)[0] == 2
    assert (run / "samples" / "latest.h5").exists()
    stats = json.loads((run / "samples" / "latest_stats.json").read_text())
    assert stats["real"]["psd"]["k"] and stats["fake"]["n_cubes"] == tiny_config.train.eval_samples


@pytest.mark.parametrize("scale", ["3", "2", "uni"])
def test_resume_is_exact(tiny_config, tiny_cubes, tmp_path, scale):
    from nbgan_app.training import train

    train(tiny_config, scale, tmp_path / "straight", steps=4, progress=False)
    train(tiny_config, scale, tmp_path / "split", steps=2, progress=False)
    train(tiny_config, scale, tmp_path / "split", steps=4, progress=False)
    assert_trained_alike(tmp_path / "straight", tmp_path / "split", 4)


def test_an_m1_with_the_lookahead_trains_samples_its_monitor_and_resumes_exactly(tiny_config, tiny_cubes, tmp_path):
    """The lookahead reaches every part: the batches' longer coarse windows, the generator's 7 more
    context channels, and the monitor's sampler (a plan without it would hand the generator 9)."""
    import dataclasses

    from nbgan_app.training import train

    config = dataclasses.replace(tiny_config, m1=dataclasses.replace(tiny_config.m1, upscaler="residual",
                                                                     lookahead=True))
    train(config, "1", tmp_path / "straight", steps=4, progress=False)
    train(config, "1", tmp_path / "split", steps=2, progress=False)
    state = train(config, "1", tmp_path / "split", steps=4, progress=False)
    assert state["state"] == "finished"
    assert_trained_alike(tmp_path / "straight", tmp_path / "split", 4)
    stats = json.loads((tmp_path / "split" / "samples" / "latest_stats.json").read_text())
    assert stats["step"] == 4 and stats["fake"]["n_cubes"] >= 1
    saved = json.loads((tmp_path / "split" / "config.json").read_text())
    assert saved["config"]["m1"]["lookahead"] is True


def test_a_resume_may_change_how_the_monitor_scores_and_stays_exact(tiny_config, tiny_cubes, tmp_path):
    """Evaluating draws on no training randomness: a run resumed with more monitor samples, scored at
    other steps, trains exactly as one that never changed them, its samples are the new monitor's, and
    its kept best was scored again on the new number before it competed."""
    import dataclasses

    from nbgan_app import best
    from nbgan_app.training import train

    scored = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data, held_out=2))
    monitored = dataclasses.replace(scored, train=dataclasses.replace(scored.train, eval_every=1, eval_samples=3))
    train(scored, "3", tmp_path / "straight", steps=4, progress=False)
    train(scored, "3", tmp_path / "split", steps=2, progress=False)
    assert json.loads((best.read_best(tmp_path / "split")[1] / "meta.json").read_text())["eval_samples"] == 2
    train(monitored, "3", tmp_path / "split", steps=4, progress=False)
    assert_trained_alike(tmp_path / "straight", tmp_path / "split", 4)
    stats = json.loads((tmp_path / "split" / "samples" / "latest_stats.json").read_text())
    assert stats["step"] == 4 and stats["fake"]["n_cubes"] == 3
    step, directory, error = best.read_best(tmp_path / "split")
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["eval_samples"] == 3
    errors = {r["step"]: r["monitor_error"] for r in rundir.read_metrics(tmp_path / "split") if "monitor_error" in r}
    if step == 2:  # kept through the resume: its error is the 3-cube one, at most the later evaluations'
        assert meta["earlier_eval_samples"] == 2 and meta["earlier_error"] == errors[2] != error
        assert error <= min(errors[3], errors[4])
    else:
        assert error == errors[step] == min(errors[3], errors[4])


def test_should_stop_checkpoints_then_resumes_exactly(tiny_config, tiny_cubes, tmp_path):
    """A hook that turns true after 3 steps stops at step 3, between checkpoint boundaries (every 2),
    with a checkpoint there; resuming to 4 equals 4 uninterrupted steps."""
    from nbgan_app.training import train

    asked = []

    def after_three_steps():
        asked.append(True)
        return len(asked) >= 3

    train(tiny_config, "2", tmp_path / "straight", steps=4, progress=False)
    state = train(tiny_config, "2", tmp_path / "split", steps=4, progress=False, should_stop=after_three_steps)
    assert state["state"] == "stopped" and state["step"] == 3 and len(asked) == 3
    assert checkpoints.latest_checkpoint(tmp_path / "split")[0] == 3
    assert train(tiny_config, "2", tmp_path / "split", steps=4, progress=False)["state"] == "finished"
    step_a, vars_a = newest_state(tmp_path / "straight")
    step_b, vars_b = newest_state(tmp_path / "split")
    assert step_a == step_b == 4 and len(vars_a) == len(vars_b)
    for a, b in zip(vars_a, vars_b):
        np.testing.assert_array_equal(a, b)
    assert logged_losses(tmp_path / "straight") == logged_losses(tmp_path / "split")


def test_locked_run_is_refused(tiny_config, tiny_cubes, tmp_path):
    from nbgan_app.training import train

    run = tmp_path / "run"
    run.mkdir()
    with rundir.run_lock(run):
        with pytest.raises(InputError, match="locked"):
            train(tiny_config, "3", run, steps=1, progress=False)


def test_other_scale_in_same_run_dir_is_refused(tiny_config, tiny_cubes, tmp_path):
    from nbgan_app.training import train

    train(tiny_config, "3", tmp_path / "run", steps=1, progress=False)
    with pytest.raises(InputError, match="scale"):
        train(tiny_config, "2", tmp_path / "run", steps=1, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_config, tiny_cubes, tmp_path, monkeypatch):
    from nbgan_app import training

    run = tmp_path / "run"
    training.train(tiny_config, "3", run, steps=2, progress=False)
    good = newest_state(run)
    real = training.scale_levels
    monkeypatch.setattr(training, "scale_levels", lambda *a, **k: real(*a, **k) * np.nan)
    with pytest.raises(InputError, match="non-finite"):
        training.train(tiny_config, "3", run, steps=4, progress=False)
    assert rundir.read_state(run)["state"] == "failed"
    after = newest_state(run)
    assert after[0] == 2 and all(np.array_equal(a, b) for a, b in zip(good[1], after[1]))


def test_finest_level_is_transformed_in_place_only_when_asked(tiny_config):
    from nbgan_app.training_setup import scale_levels
    from nbgan_app.transforms import forward

    counts = np.full((2, 16, 16, 16), 3.0, np.float32)
    copy = scale_levels(tiny_config, "1", counts)
    assert copy is not counts and counts.max() == 3.0
    same = scale_levels(tiny_config, "1", counts, inplace=True)
    assert same is counts and np.allclose(same, forward(3.0, tiny_config.transform))
    assert scale_levels(tiny_config, "3", copy).shape == (2, 4, 4, 4)


def test_evaluation_upscales_as_nbgan_upscale_does_and_leaves_the_seed_state(tiny_config, tiny_cubes, tiny_runs,
                                                                             tmp_path):
    """The monitor's M1 samples are `nbgan upscale --from-fine` of the held-out cubes with the step's seed,
    each held-out cube in turn until there are `eval_samples` (here 2 draws of the one held-out cube)."""
    import h5py
    import keras

    from nbgan_app.cli import main
    from nbgan_app.cubes import load_cubes, write_cube
    from nbgan_app.dataset import split_dataset
    from nbgan_app.evaluation import Evaluator
    from nbgan_app.training_setup import build_compiled_gan

    gan = build_compiled_gan(tiny_config, "1")
    checkpoints.restore_checkpoint(checkpoints.latest_checkpoint(tiny_runs["1"])[1], gan)
    _, held_out = split_dataset(tiny_config, tiny_cubes)
    seed_state = keras.ops.convert_to_numpy(gan.seed_generator.state.value)
    (tmp_path / "run").mkdir()
    Evaluator(tiny_config, "1", held_out, 64.0, tmp_path / "run")(gan, 5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gan.seed_generator.state.value), seed_state)

    fake, _ = load_cubes([tmp_path / "run" / rundir.SAMPLES / rundir.LATEST_SAMPLES])
    assert len(fake) == tiny_config.train.eval_samples > len(held_out)
    assert not np.array_equal(fake[0], fake[1])  # two draws of one cube, with other latents
    write_cube(tmp_path / "held.h5", held_out[np.arange(len(fake)) % len(held_out)], 64.0)
    seed = tiny_config.train.seed * 1_000_003 + 5
    assert main(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "held.h5"), "--from-fine",
                 "--seed", str(seed), "--order", "wavefront", "--out", str(tmp_path / "up.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "up.h5", "r") as f:
        np.testing.assert_array_equal(f["data"][()], fake)


def test_decayed_learning_rates_fall_linearly_resume_exactly_and_stop_at_zero(tiny_config, tiny_cubes, tmp_path):
    """train.decay_steps: both rates fall linearly to 0 at that generator step (the critic's over its
    num_critic_steps updates per step), a resumed run continues the schedule, and past it the networks
    stop moving."""
    import dataclasses

    import keras

    from nbgan_app.models.factory import build_optimizers
    from nbgan_app.training import train

    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, decay_steps=2))
    critic_opt, generator_opt = build_optimizers(config.train)
    n, lr = config.train.num_critic_steps, config.train.generator_learning_rate
    for step, fraction in ((0, 1.0), (1, 0.5), (2, 0.0), (3, 0.0)):
        generator_opt.iterations.assign(step)
        critic_opt.iterations.assign(step * n)
        assert float(keras.ops.convert_to_numpy(generator_opt.learning_rate)) == pytest.approx(lr * fraction)
        assert float(keras.ops.convert_to_numpy(critic_opt.learning_rate)) == pytest.approx(
            config.train.critic_learning_rate * fraction)

    train(config, "2", tmp_path / "straight", steps=4, progress=False)
    train(config, "2", tmp_path / "split", steps=2, progress=False)
    train(config, "2", tmp_path / "split", steps=4, progress=False)
    for a, b in zip(newest_state(tmp_path / "straight")[1], newest_state(tmp_path / "split")[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    weights = {}
    for step in (2, 4):
        path = dict(checkpoints.list_checkpoints(tmp_path / "split"))[step]
        weights[step] = [keras.ops.convert_to_numpy(v) for v in
                         keras.saving.load_model(path / "generator.keras", compile=False).trainable_variables]
    for a, b in zip(weights[2], weights[4]):
        np.testing.assert_array_equal(a, b)


def test_generator_ema_resumes_exactly_and_is_what_checkpoints_sample(tiny_config, tiny_cubes, tmp_path):
    """With train.generator_ema the averages resume exactly, and generator.keras holds the averages,
    not the raw weights (which keep training)."""
    import dataclasses

    import keras

    from nbgan_app.training import train

    config = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, generator_ema=0.9, optimizer="adam"))
    train(config, "2", tmp_path / "straight", steps=4, progress=False)
    train(config, "2", tmp_path / "split", steps=2, progress=False)
    train(config, "2", tmp_path / "split", steps=4, progress=False)
    _, vars_a = newest_state(tmp_path / "straight")
    _, vars_b = newest_state(tmp_path / "split")
    for a, b in zip(vars_a, vars_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    from nbgan_app.training_setup import build_compiled_gan

    gan = build_compiled_gan(config, "2")
    step, path = checkpoints.latest_checkpoint(tmp_path / "straight")
    checkpoints.restore_checkpoint(path, gan)
    saved = keras.saving.load_model(path / "generator.keras", compile=False)
    averages = [keras.ops.convert_to_numpy(v) for v in gan.g_optimizer._model_variables_moving_average]
    raw = [keras.ops.convert_to_numpy(v) for v in gan.generator.trainable_variables]
    for s, a in zip(saved.trainable_variables, averages):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(s), a, rtol=1e-6, atol=1e-7)
    assert any(np.abs(a - r).max() > 1e-6 for a, r in zip(averages, raw))
    with gan.sampling_weights():
        pass  # restores the raw weights on exit
    for v, r in zip(gan.generator.trainable_variables, raw):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), r)
