"""A damaged checkpoint never strands a run. Runs on every backend.

Training resumes from the newest checkpoint that restores, sampling uses the
newest generator that loads; each says so in one line on stderr, and the
resumed run is exactly the uninterrupted one. Also the NaN guard's message.
"""

import json
import shutil

import h5py
import numpy as np
import pytest

from nbgan_app import checkpoints, rundir
from nbgan_app.checkpoints import GENERATOR_FILE, META_FILE, STATE_FILE, step_name
from nbgan_app.errors import InputError
from run_checks import checkpoint_state, logged_losses

pytestmark = pytest.mark.backends


def _checkpoint(run, step):
    return run / rundir.CHECKPOINTS / step_name(step)


def _truncate(path, keep=None):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 if keep is None else keep])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the arrays' bytes: only the CRC can tell
    path.write_bytes(bytes(data))


def _steps(run):
    return [step for step, _ in checkpoints.list_checkpoints(run)]


def _err_lines(capsys):
    """stderr's lines, but for the warning every run of tiny.toml gives (it holds out one cube)."""
    return [line for line in capsys.readouterr().err.splitlines()
            if line.strip() and not line.startswith("warning: data.held_out = 1")]


@pytest.fixture(scope="module")
def trained(tiny_config, tiny_cubes, tmp_path_factory):
    """An M3 run trained to step 4 (checkpoints at 2 and 4) and one trained straight to 6, to copy."""
    from nbgan_app.training import train

    root = tmp_path_factory.mktemp("fallback")
    train(tiny_config, "3", root / "four", steps=4, progress=False)
    train(tiny_config, "3", root / "six", steps=6, progress=False)
    assert _steps(root / "four") == [2, 4]
    return root


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the run at step 4."""
    return shutil.copytree(trained / "four", tmp_path / "run")


def test_keep_leaves_a_checkpoint_to_fall_back_on():
    assert checkpoints.KEEP >= 2


def test_train_resumes_exactly_from_the_checkpoint_before_a_truncated_one(tiny_config, trained, run, capsys):
    from nbgan_app.training import train

    _truncate(_checkpoint(run, 4) / STATE_FILE)
    capsys.readouterr()
    state = train(tiny_config, "3", run, steps=6, progress=False)
    err = _err_lines(capsys)
    assert len(err) == 1, err
    assert str(run) in err[0] and f"{step_name(4)} cannot be used" in err[0] and STATE_FILE in err[0]
    assert err[0].endswith(f"resuming from {step_name(2)}")
    assert state["state"] == "finished" and state["step"] == 6 and state["start"] == 2
    # metrics past the fallback step were dropped and logged again: one record per step
    assert [r["step"] for r in rundir.read_metrics(run)] == list(range(1, 7))
    np.testing.assert_allclose(logged_losses(run), logged_losses(trained / "six"), rtol=1e-4, atol=1e-6)
    for step in (4, 6):  # the damaged checkpoint was replaced by a good one at its step
        for a, b in zip(checkpoint_state(run, step), checkpoint_state(trained / "six", step), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert _steps(run) == [2, 4, 6]


@pytest.mark.parametrize("damage, reason", [
    (lambda d: _truncate(d / STATE_FILE), "state.npz is unreadable"),
    (lambda d: _truncate(d / STATE_FILE, keep=0), "state.npz is unreadable"),
    (lambda d: (d / STATE_FILE).unlink(), "state.npz is missing"),
    (lambda d: _flip_a_byte(d / STATE_FILE), "state.npz is unreadable"),
    (lambda d: np.savez(d / STATE_FILE, v00000=np.zeros(3)), "a checkpoint of another model"),
], ids=["truncated", "empty", "missing", "bit-flip", "another-model"])
def test_each_kind_of_damage_is_skipped_with_its_reason(tiny_config, run, damage, reason):
    from nbgan_app.training_setup import build_compiled_gan

    damage(_checkpoint(run, 4))
    gan = build_compiled_gan(tiny_config, "3")
    step, skipped = checkpoints.restore_newest(run, gan)
    assert step == 2 and [s for s, _ in skipped] == [4] and reason in skipped[0][1]
    assert "\n" not in skipped[0][1]
    restored = [np.asarray(v) for v in map(_to_numpy, checkpoints.training_variables(gan))]
    for a, b in zip(restored, checkpoint_state(run, 2), strict=True):
        np.testing.assert_array_equal(a, b)


def _to_numpy(variable):
    import keras

    return keras.ops.convert_to_numpy(variable)


def test_a_checkpoint_of_another_shape_leaves_the_model_untouched(tiny_config, run):
    """Same number of variables, one of another shape: refused before anything is assigned."""
    from nbgan_app.training_setup import build_compiled_gan

    values = checkpoint_state(run, 4)
    values[0] = np.zeros(values[0].shape + (2,), values[0].dtype)
    np.savez(_checkpoint(run, 4) / STATE_FILE, **{f"v{i:05d}": v for i, v in enumerate(values)})
    gan = build_compiled_gan(tiny_config, "3")
    before = [_to_numpy(v) for v in checkpoints.training_variables(gan)]
    with pytest.raises(checkpoints.DamagedCheckpoint, match="another model"):
        checkpoints.restore_checkpoint(_checkpoint(run, 4), gan)
    for a, b in zip(before, checkpoints.training_variables(gan)):
        np.testing.assert_array_equal(a, _to_numpy(b))


def test_no_checkpoint_that_restores_is_refused_and_nothing_is_deleted(tiny_config, run, capsys):
    from nbgan_app.training import train

    metrics = (run / rundir.METRICS).read_text()
    _truncate(_checkpoint(run, 4) / STATE_FILE)
    (_checkpoint(run, 2) / STATE_FILE).unlink()
    with pytest.raises(InputError) as info:
        train(tiny_config, "3", run, steps=6, progress=False)
    message = str(info.value)
    assert str(run) in message and "none of its 2 checkpoints" in message and step_name(4) in message
    assert _steps(run) == [2, 4] and (run / rundir.METRICS).read_text() == metrics


@pytest.mark.parametrize("damage, reason", [
    (lambda d: _truncate(d / GENERATOR_FILE), "generator.keras is not a readable Keras archive"),
    (lambda d: (d / GENERATOR_FILE).unlink(), "generator.keras is missing"),
    (lambda d: (d / META_FILE).write_text("{"), "meta.json is unreadable"),
], ids=["truncated-generator", "missing-generator", "garbage-meta"])
def test_a_restored_checkpoint_with_a_damaged_generator_or_meta_is_rewritten(tiny_config, run, capsys,
                                                                             damage, reason):
    """The state restores, so the checkpoint is written again from it; sampling then finds it whole."""
    import keras

    from nbgan_app.training import train

    before = checkpoint_state(run, 4)
    damage(_checkpoint(run, 4))
    capsys.readouterr()
    state = train(tiny_config, "3", run, steps=4, progress=False)
    err = _err_lines(capsys)
    assert state["state"] == "finished" and state["step"] == state["start"] == 4
    assert len(err) == 1 and reason in err[0] and "rewritten" in err[0] and step_name(4) in err[0], err
    checkpoints.check_generator_file(_checkpoint(run, 4))
    checkpoints.check_meta(_checkpoint(run, 4), 4)
    keras.saving.load_model(_checkpoint(run, 4) / GENERATOR_FILE, compile=False)
    for a, b in zip(before, checkpoint_state(run, 4), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_sweep_keeps_good_checkpoints_and_a_damaged_newer_one(tiny_config, run, capsys):
    """A damaged checkpoint newer than the resume point neither counts as kept nor is deleted before
    KEEP good checkpoints are newer than it."""
    from nbgan_app.training import train

    shutil.copytree(_checkpoint(run, 4), _checkpoint(run, 9))
    _truncate(_checkpoint(run, 9) / STATE_FILE)
    train(tiny_config, "3", run, steps=8, progress=False)
    assert f"resuming from {step_name(4)}" in capsys.readouterr().err
    assert _steps(run) == [4, 6, 8, 9]  # 3 good ones, and the damaged one, newer than them all


def _sample(run, out, seed=3):
    from nbgan_app.cli import main

    return main(["sample", "--chain", str(run), "--n", "2", "--out", str(out), "--seed", str(seed), "--quiet"])


@pytest.mark.parametrize("damage, reason", [
    (lambda d: _truncate(d / GENERATOR_FILE), "generator.keras is not a readable Keras archive"),
    (lambda d: _flip_a_byte(d / GENERATOR_FILE), "generator.keras"),
    (lambda d: (d / GENERATOR_FILE).unlink(), "generator.keras is missing"),
], ids=["truncated", "bit-flip", "missing"])
def test_sample_uses_the_newest_generator_that_loads(run, tmp_path, capsys, damage, reason):
    reference = shutil.copytree(run, tmp_path / "reference")
    shutil.rmtree(_checkpoint(reference, 4))
    damage(_checkpoint(run, 4))
    capsys.readouterr()
    assert _sample(run, tmp_path / "fallback.h5") == 0
    err = _err_lines(capsys)
    assert len(err) == 1 and str(run) in err[0] and reason in err[0], err
    assert f"{step_name(4)} cannot be used" in err[0] and err[0].endswith(f"the generator of {step_name(2)}")
    assert _sample(reference, tmp_path / "reference.h5") == 0
    with h5py.File(tmp_path / "fallback.h5", "r") as a, h5py.File(tmp_path / "reference.h5", "r") as b:
        np.testing.assert_array_equal(a["data"][()], b["data"][()])
        assert json.loads(a.attrs["checkpoint_steps"]) == [2]


def test_sample_refuses_a_run_whose_generators_all_fail(run, tmp_path, capsys):
    for step in (2, 4):
        _truncate(_checkpoint(run, step) / GENERATOR_FILE)
    capsys.readouterr()
    assert _sample(run, tmp_path / "out.h5") == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and str(run) in err[0] and "no checkpoint whose generator loads" in err[0], err
    assert not (tmp_path / "out.h5").exists()


def test_nan_guard_names_the_step_the_losses_and_the_checkpoint_to_resume_from(tiny_config, run, monkeypatch):
    from nbgan_app import training

    real = training.scale_levels
    monkeypatch.setattr(training, "scale_levels", lambda *a, **k: real(*a, **k) * np.nan)
    with pytest.raises(InputError) as info:
        training.train(tiny_config, "3", run, steps=6, progress=False)
    message = str(info.value)
    assert "non-finite loss at step 5" in message and "critic_loss=nan" in message and "{" not in message
    assert "resumes from step 4" in message and "no checkpoint" not in message
    assert rundir.read_state(run)["error"] == message and rundir.read_state(run)["state"] == "failed"


def test_nan_guard_without_a_checkpoint_says_the_run_must_be_restarted(tiny_config, tiny_cubes, tmp_path,
                                                                      monkeypatch):
    from nbgan_app import training

    real = training.scale_levels
    monkeypatch.setattr(training, "scale_levels", lambda *a, **k: real(*a, **k) * np.nan)
    with pytest.raises(InputError) as info:
        training.train(tiny_config, "3", tmp_path / "run", steps=4, progress=False)
    message = str(info.value)
    assert "non-finite loss at step 1" in message and "=nan" in message and "{" not in message
    assert "no checkpoint to resume from" in message and "must be restarted" in message
    assert "resumes from" not in message and _steps(tmp_path / "run") == []


def test_several_damaged_checkpoints_are_skipped_newest_first_and_named_in_one_line(tiny_config, run):
    from nbgan_app.training_setup import build_compiled_gan

    shutil.copytree(_checkpoint(run, 4), _checkpoint(run, 6))
    _truncate(_checkpoint(run, 6) / STATE_FILE)
    (_checkpoint(run, 4) / STATE_FILE).unlink()
    step, skipped = checkpoints.restore_newest(run, build_compiled_gan(tiny_config, "3"))
    assert step == 2 and [s for s, _ in skipped] == [6, 4]
    line = checkpoints.fallback_note(run, skipped, f"resuming from {step_name(2)}")
    assert "\n" not in line and line.startswith(f"run {run}: checkpoints {step_name(6)}, {step_name(4)} cannot")
    assert "state.npz is unreadable" in line and "state.npz is missing" in line
