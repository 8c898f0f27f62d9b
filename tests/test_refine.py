"""A scale's second stage (`refine_at`, `refine_rate`, its losses and their start, its monitor spacing): the
switch and exact resumes across it. Every backend."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from nbgan_app import best, checkpoints, rundir
from nbgan_app.errors import InputError
from run_checks import assert_trained_alike

pytestmark = pytest.mark.backends
AT, RATE = 2, 0.1


def _config(tiny_config, refine_at=AT):
    """The tiny config scored at every step (2 monitor cubes, so runs keep a best) with M2's second
    stage at `refine_at`."""
    config = dataclasses.replace(
        tiny_config, data=dataclasses.replace(tiny_config.data, held_out=2),
        train=dataclasses.replace(tiny_config.train, eval_every=1))
    return dataclasses.replace(config, m2=dataclasses.replace(config.m2, refine_at=refine_at, refine_rate=RATE))


def _restored(config, path):
    """A built M2 GAN holding checkpoint `path`."""
    from nbgan_app.training_setup import build_compiled_gan

    gan = build_compiled_gan(config, "2")
    checkpoints.restore_checkpoint(path, gan)
    return gan


def _rates(gan):
    return float(gan.d_optimizer.learning_rate), float(gan.g_optimizer.learning_rate)


def test_a_resume_is_exact_across_the_switch(tiny_config, tiny_cubes, tmp_path):
    """4 steps with the switch at 2 equal 2 + 2 (the second call switches before its first step, from
    the first stage's checkpoint at 2, as after a kill between that checkpoint and the switch's) and
    3 + 1 (stopped after the switch); the rates are the second stage's from the switch on."""
    from nbgan_app.training import train

    config = _config(tiny_config)
    lr = config.train.generator_learning_rate, config.train.critic_learning_rate
    train(config, "2", tmp_path / "straight", steps=4, progress=False)
    assert train(config, "2", tmp_path / "halves", steps=2, progress=False)["state"] == "finished"
    assert _rates(_restored(config, dict(checkpoints.list_checkpoints(tmp_path / "halves"))[2])) == \
        pytest.approx((lr[1], lr[0]))  # a call that ends at the switch leaves it to the next
    train(config, "2", tmp_path / "halves", steps=4, progress=False)
    asked = []
    stopped = train(config, "2", tmp_path / "stopped", steps=4, progress=False,
                    should_stop=lambda: asked.append(1) or len(asked) >= 3)
    assert stopped["state"] == "stopped" and stopped["step"] == 3
    train(config, "2", tmp_path / "stopped", steps=4, progress=False)
    for run in ("halves", "stopped"):
        assert_trained_alike(tmp_path / "straight", tmp_path / run, 4)
    for step in (2, 4):
        assert _rates(_restored(config, dict(checkpoints.list_checkpoints(tmp_path / "straight"))[step])) == \
            pytest.approx((lr[1] * RATE, lr[0] * RATE))


def test_the_second_stage_trains_with_its_losses_and_resumes_with_them(tiny_config, tiny_cubes, tmp_path):
    """`refine_count_weight` and `refine_spectrum_weight` act from the switch on, not before it, and a run
    stopped after the switch trains on with them: 3 + 1 steps equal 4."""
    from nbgan_app.training import train

    plain = _config(tiny_config)
    weighed = dataclasses.replace(plain, m2=dataclasses.replace(plain.m2, refine_count_weight=1.0,
                                                                refine_spectrum_weight=1.0))
    train(plain, "2", tmp_path / "plain", steps=4, progress=False)
    train(weighed, "2", tmp_path / "straight", steps=4, progress=False)
    asked = []
    train(weighed, "2", tmp_path / "stopped", steps=4, progress=False,
          should_stop=lambda: asked.append(1) or len(asked) >= 3)
    train(weighed, "2", tmp_path / "stopped", steps=4, progress=False)
    assert_trained_alike(tmp_path / "straight", tmp_path / "stopped", 4)

    def generator(run, step):
        path = dict(checkpoints.list_checkpoints(tmp_path / run))[step]
        return _restored(weighed, path).generator.get_weights()

    for a, b in zip(generator("plain", 2), generator("straight", 2)):
        np.testing.assert_array_equal(a, b)  # the first stage has no losses
    assert any(np.abs(a - b).max() > 0 for a, b in zip(generator("plain", 4), generator("straight", 4)))


def test_losses_planned_after_the_switch_start_there_and_resumes_agree(tiny_config, tiny_cubes, tmp_path):
    """`refine_losses_at = 4` with the switch at 2: to step 4 the run equals one without losses, then it
    does not; 6 uninterrupted steps (the call's fit cut at 4) equal 4 + 2 (the resume at 4 sets them)
    and 3 + 3 (the resume at 3 cuts at 4)."""
    from nbgan_app.training import train

    plain = _config(tiny_config)
    late = dataclasses.replace(plain, m2=dataclasses.replace(plain.m2, refine_count_weight=1.0,
                                                             refine_spectrum_weight=1.0, refine_losses_at=4))
    train(plain, "2", tmp_path / "plain", steps=6, progress=False)
    train(late, "2", tmp_path / "straight", steps=6, progress=False)
    train(late, "2", tmp_path / "halves", steps=4, progress=False)
    train(late, "2", tmp_path / "halves", steps=6, progress=False)
    asked = []
    assert train(late, "2", tmp_path / "stopped", steps=6, progress=False,
                 should_stop=lambda: asked.append(1) or len(asked) >= 3)["step"] == 3
    train(late, "2", tmp_path / "stopped", steps=6, progress=False)
    for run in ("halves", "stopped"):
        assert_trained_alike(tmp_path / "straight", tmp_path / run, 6)

    def generator(run, step):
        path = dict(checkpoints.list_checkpoints(tmp_path / run))[step]
        return _restored(late, path).generator.get_weights()

    for a, b in zip(generator("plain", 4), generator("straight", 4)):
        np.testing.assert_array_equal(a, b)  # no losses before their start
    assert any(np.abs(a - b).max() > 0 for a, b in zip(generator("plain", 6), generator("straight", 6)))


def test_the_second_stage_has_its_own_monitor_spacing(tiny_config, tiny_cubes, tmp_path):
    """`refine_eval_every = 1` with `train.eval_every = 4` and the switch at 2: the monitor scores every
    step after the switch (3 to 6); a run without it scores step 4 and the last, 6."""
    from nbgan_app.training import train

    spaced = _config(tiny_config)
    spaced = dataclasses.replace(spaced, train=dataclasses.replace(spaced.train, eval_every=4))
    fine = dataclasses.replace(spaced, m2=dataclasses.replace(spaced.m2, refine_eval_every=1))

    def scored(config, run):
        train(config, "2", tmp_path / run, steps=6, progress=False)
        return [r["step"] for r in rundir.read_metrics(tmp_path / run) if "monitor_error" in r]

    assert scored(spaced, "spaced") == [4, 6]
    assert scored(fine, "fine") == [3, 4, 5, 6]


def test_the_switch_takes_the_best_generator_and_keeps_the_critic(tiny_config, tiny_cubes, tmp_path):
    """A run trained to 2 without a second stage, whose best is then an untrained generator, resumed
    with the stage planned at 2 (a resume may plan it): the checkpoint at 2 is replaced by one whose
    generator is the best's, whose critic and optimizer moments are the first stage's, and whose
    rates are lowered; a later step trains on from there."""
    import keras

    from nbgan_app.training import train
    from nbgan_app.training_setup import build_compiled_gan

    plain, config = _config(tiny_config, refine_at=0), _config(tiny_config)
    run = tmp_path / "run"
    train(plain, "2", run, steps=2, progress=False)
    first = tmp_path / "first-stage"
    shutil.copytree(dict(checkpoints.list_checkpoints(run))[2], first)
    untrained = build_compiled_gan(config, "2").generator
    shutil.rmtree(run / best.BEST)
    assert best.keep_if_best(run, untrained, step=1, error=0.0)
    train(config, "2", run, steps=3, progress=False)

    before, after = _restored(config, first), _restored(config, dict(checkpoints.list_checkpoints(run))[2])
    for a, b in zip(after.generator.get_weights(), untrained.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before.generator.get_weights(), untrained.get_weights()))
    for a, b in zip(after.critic.get_weights(), before.critic.get_weights()):
        np.testing.assert_array_equal(a, b)
    moments = [v for v in after.g_optimizer.variables if "learning_rate" not in v.path]
    for a, b in zip(moments, [v for v in before.g_optimizer.variables if "learning_rate" not in v.path]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert _rates(after) == pytest.approx(tuple(RATE * r for r in _rates(before)))
    assert checkpoints.latest_checkpoint(run)[0] == 3
    planned = json.loads((run / rundir.CONFIG).read_text())["config"]["m2"]  # the run's file names its stage now
    assert (planned["refine_at"], planned["refine_rate"]) == (AT, RATE)


def test_a_run_trained_past_the_planned_switch_is_refused_and_left_as_it_was(tiny_config, tiny_cubes, tmp_path):
    from nbgan_app.training import train

    run = tmp_path / "run"
    train(_config(tiny_config, refine_at=0), "2", run, steps=4, progress=False)
    state, saved = (run / rundir.STATE).read_text(), (run / rundir.CONFIG).read_text()
    with pytest.raises(InputError, match=r"is at step 4, past m2\.refine_at = 2"):
        train(_config(tiny_config), "2", run, steps=6, progress=False)
    assert (run / rundir.STATE).read_text() == state and (run / rundir.CONFIG).read_text() == saved
    assert checkpoints.latest_checkpoint(run)[0] == 4


def test_a_best_newer_than_the_switch_is_refused_and_the_checkpoint_kept(tiny_config, tiny_cubes, tmp_path):
    """A run resumed from before its switch whose best came later (an attempt that went past the switch,
    then fell back) cannot start the second stage from the generator an uninterrupted run did."""
    from nbgan_app.training import train
    from nbgan_app.training_setup import build_compiled_gan

    run = tmp_path / "run"
    train(_config(tiny_config, refine_at=0), "2", run, steps=2, progress=False)
    assert best.keep_if_best(run, build_compiled_gan(tiny_config, "2").generator, step=3, error=0.0)
    with pytest.raises(InputError, match=r"best generator is from step 3, after the second stage's switch at step 2"):
        train(_config(tiny_config), "2", run, steps=4, progress=False)
    config = _config(tiny_config)
    assert checkpoints.latest_checkpoint(run)[0] == 2
    assert _rates(_restored(config, dict(checkpoints.list_checkpoints(run))[2])) == pytest.approx(
        (config.train.critic_learning_rate, config.train.generator_learning_rate))
