"""`nbgan train` as a process: SIGKILL and resume, SIGTERM stops after a checkpoint, exit codes."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbgan_app import checkpoints, rundir

ROOT = Path(__file__).resolve().parents[1]




def _train(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "nbgan_app", "train", *args, "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for_checkpoint(run, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if checkpoints.latest_checkpoint(run) and checkpoints.latest_checkpoint(run)[0] >= 2:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_rerun_resumes_without_duplicate_steps(tiny_toml, tmp_path):
    run = tmp_path / "run"
    args = ["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "400"]
    proc = _train(args)
    _wait_for_checkpoint(run, proc)
    proc.kill()
    proc.wait()
    killed_at = checkpoints.latest_checkpoint(run)[0]
    assert rundir.effective_state(run)["state"] in ("failed", "finished")
    args[-1] = str(killed_at + 4)
    done = _train(args)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    steps = [r["step"] for r in rundir.read_metrics(run)]
    assert steps == list(range(1, killed_at + 5))
    assert rundir.read_state(run)["state"] == "finished"


def test_sigterm_stops_gracefully_with_checkpoint(tiny_toml, tmp_path):
    run = tmp_path / "run"
    proc = _train(["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "100000"])
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    state = rundir.read_state(run)
    assert state["state"] == "stopped"
    assert checkpoints.latest_checkpoint(run)[0] == state["step"]
    assert not rundir.is_locked(run)


@pytest.mark.parametrize("args, message", [
    (["--config", "nope.toml", "--scale", "3"], "no such config"),
    (["--config", "configs/tiny.toml", "--scale", "3", "--steps", "0"], "--steps"),
])
def test_bad_input_exits_2(args, message, tmp_path):
    proc = _train(args + ["--run-dir", str(tmp_path / "r")])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in err and len(err.strip().splitlines()) == 1


# In-process: the checks that refuse a run before anything is created, and what train says.

def _main(args):
    from nbgan_app.cli import main

    return main(["train", *args, "--quiet"])


def _one_error_line(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def _data_dir_toml(tiny_toml, tmp_path, data, held_out, name="dir.toml"):
    """configs/tiny.toml with its data a directory of cube files instead of the simulation."""
    import re

    data_table = f'[data]\ndir = "{data}"\nbox_size = 64.0\nheld_out = {held_out}\n\n'
    text = re.sub(r"\[data\].*?(?=\[pyramid\])", data_table, tiny_toml.read_text(), flags=re.S)
    path = tmp_path / name
    path.write_text(text)
    return path


def _write_cubes(directory, cubes):
    from nbgan_app.cubes import write_cube

    directory.mkdir(exist_ok=True)
    for i, cube in enumerate(cubes):
        write_cube(directory / f"cube_{i}.h5", cube, 64.0)


@pytest.mark.parametrize("case", ["empty", "missing", "all-held-out"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-run-dir", "existing-run-dir"])
def test_a_failed_data_check_creates_nothing_and_the_corrected_rerun_trains(tiny_toml, tiny_cubes, tmp_path,
                                                                            capsys, case, existing):
    data, run = tmp_path / "cubes", tmp_path / "run"
    held_out = len(tiny_cubes) if case == "all-held-out" else 2
    if case == "empty":
        data.mkdir()
    elif case == "all-held-out":
        _write_cubes(data, tiny_cubes)
    if existing:
        run.mkdir()
    args = ["--scale", "3", "--run-dir", str(run), "--steps", "1"]
    assert _main(["--config", str(_data_dir_toml(tiny_toml, tmp_path, data, held_out)), *args]) == 2
    line = _one_error_line(capsys)
    key = "data.held_out" if case == "all-held-out" else "data.dir"
    assert line.startswith("nbgan train: error: ") and key in line, line
    assert (sorted(run.iterdir()) == [] if existing else not run.exists())
    # the corrected command: cubes in the directory, or fewer held out
    if case == "all-held-out":
        config = _data_dir_toml(tiny_toml, tmp_path, data, held_out - 1, name="fixed.toml")
    else:
        _write_cubes(data, tiny_cubes)
        config = _data_dir_toml(tiny_toml, tmp_path, data, held_out)
    assert _main(["--config", str(config), *args]) == 0, capsys.readouterr().err
    assert rundir.read_state(run)["state"] == "finished"


@pytest.mark.parametrize("key, value", [
    ("generator_learning_rate", "-1.0"),
    ("critic_learning_rate", "0.0"),
    ("gp_weight", "-10.0"),
])
def test_a_senseless_hyper_parameter_is_refused_before_anything_is_created(tiny_toml, tmp_path, capsys,
                                                                         key, value):
    import re

    text = re.sub(rf"^{key} = .*$", f"{key} = {value}", tiny_toml.read_text(), flags=re.M)
    assert f"{key} = {value}" in text
    tiny_toml.write_text(text)
    run = tmp_path / "run"
    assert _main(["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "1"]) == 2
    assert f"train.{key}: expected > 0" in _one_error_line(capsys)
    assert not run.exists()


def test_a_run_dir_whose_parent_is_missing_is_refused_by_name(tiny_toml, tmp_path, capsys):
    run = tmp_path / "typo" / "run"
    assert _main(["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "1"]) == 2
    line = _one_error_line(capsys)
    assert str(tmp_path / "typo") in line and "does not exist" in line
    assert not (tmp_path / "typo").exists()


def test_a_locked_run_is_refused_before_the_data_is_loaded(tiny_toml, tmp_path, capsys, monkeypatch):
    from nbgan_app import dataset

    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded for a locked run")

    monkeypatch.setattr(dataset, "load_dataset", no_data)
    run = tmp_path / "run"
    run.mkdir()
    with rundir.run_lock(run):
        assert _main(["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "1"]) == 2
    assert "locked" in _one_error_line(capsys)
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]


def test_steps_below_the_runs_step_say_nothing_was_trained(tiny_toml, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run)]
    assert _main(args + ["--steps", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{run}: finished at step 2"
    assert "warning: data.held_out = 1" in err  # tiny.toml holds out one cube: no scores, said once
    metrics = (run / rundir.METRICS).read_text()
    assert _main(args + ["--steps", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"run {run} is already at step 2 >= --steps 1; nothing to train"
    assert (run / rundir.METRICS).read_text() == metrics and checkpoints.latest_checkpoint(run)[0] == 2


def test_the_rate_counts_only_this_process_steps_over_their_time(capsys):
    """A run resumed at step 60 that spends 50 s starting up, then 10 steps per 4 s: 2.5 step/s, not
    70 steps over 54 s (earlier steps counted) or 10 over 50 s (start-up counted)."""
    from nbgan_app.progress import StepReporter

    times = iter([50.0, 54.0, 58.0])
    record = {"critic_loss": 1.0, "wasserstein": 0.5}
    with StepReporter(total=100, start=60, enabled=None, clock=lambda: next(times)) as reporter:
        for step in (70, 80, 90):
            reporter.update(step, record)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "step/s" not in lines[0]
    assert lines[1].endswith("2.50 step/s") and lines[2].endswith("2.50 step/s")


def test_held_out_zero_trains_without_evaluation(tiny_toml, tmp_path, capsys):
    import re

    tiny_toml.write_text(re.sub(r"^held_out = \d+.*$", "held_out = 0", tiny_toml.read_text(), flags=re.M))
    run = tmp_path / "run"
    assert _main(["--config", str(tiny_toml), "--scale", "2", "--run-dir", str(run), "--steps", "2"]) == 0, \
        capsys.readouterr().err
    records = rundir.read_metrics(run)
    assert [r["step"] for r in records] == [1, 2] and not (run / rundir.SAMPLES).exists()
    assert all(set(r) == {"step", "time", *rundir.LOSSES} for r in records)


def test_a_run_dir_that_is_a_file_is_refused_and_left_alone(tiny_toml, tmp_path, capsys):
    run = tmp_path / "run"
    run.write_text("notes")
    assert _main(["--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "1"]) == 2
    line = _one_error_line(capsys)
    assert str(run) in line and "not a directory" in line and run.read_text() == "notes"
