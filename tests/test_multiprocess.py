"""`--distribute` across processes: two local CPU processes over loopback against one process.

Each run here is real `training.train` in fresh processes (the engines must start
before the backend computes anything): this file run as a script is the worker
(`python tests/test_multiprocess.py TOML RUN_DIR STEPS DISTRIBUTE`), with the
backend from KERAS_BACKEND and the processes from NBGAN_COORDINATOR,
NBGAN_NUM_PROCESSES and NBGAN_PROCESS_ID, as a user would set them.

The tiny config's M3 with a global batch of 4 (2 rows per process), 4 steps,
a checkpoint every 2, the held-out monitor every 2 steps, and plain SGD for
both networks (its update is linear in the gradient, so a wrong gradient
scale shows; RMSprop would divide it out) with a moving average of the
generator's weights (so the checkpoints' swap to the sampling weights runs too).
What must hold:
- the two processes' losses, logged once per step by the chief alone, and every
  variable of the final checkpoint (networks, optimizers, moving average, seed
  state) equal one process training on the same global batch, up to float
  reduction order;
- stopping at step 2 and starting both processes again gives the checkpoint of
  an uninterrupted two-process run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax")
PROCESSES = 2
BATCH = 4
STEPS = 4
LEARNING_RATE = 0.01
EMA = 0.9
LOSSES = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")
# float32 sums over the batch split into per-process partial sums (tests/test_distribute.py measured
# ~1e-7); a wrong gradient scale moves the weights by ~1e-1 after 4 SGD steps, unshared noise the losses by ~1e-2
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6
WEIGHT_ATOL = 1e-5
TIMEOUT = 600  # seconds for one run of the processes; far beyond what they take (a hang fails, not blocks)

def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env(backend: str, process: int | None, addresses: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBGAN_", "SLURM_")) and k != "TF_CONFIG"}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    if process is not None:
        env.update(NBGAN_COORDINATOR=addresses, NBGAN_NUM_PROCESSES=str(PROCESSES), NBGAN_PROCESS_ID=str(process))
    return env


def _start(backend: str, toml: Path, run: Path, steps: int, processes: int) -> list:
    """Start training `run` to `steps` with `processes` processes (1: without --distribute):
    [(process, stdout file, stderr file)]."""
    args = [sys.executable, __file__, str(toml), str(run), str(steps), "1" if processes > 1 else "0"]
    addresses = ",".join(f"127.0.0.1:{port}" for port in _free_ports(processes))
    started = []
    for i in range(processes):
        # output to files, not pipes: a process blocked on a full pipe would stall the other in a collective
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        env = _env(backend, i if processes > 1 else None, addresses)
        started.append((subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=err, text=True), out, err))
    return started


def _finish(started: list) -> list[dict]:
    """Wait for the processes of `_start` (killing them after TIMEOUT); each one's result."""
    try:
        for proc, _, _ in started:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc, _, _ in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = []
    for _, out, err in started:
        out.seek(0)
        err.seek(0)
        outputs.append((out.read(), err.read()))
        out.close()
        err.close()
    failed = [f"process {i} exit {proc.returncode}:\n{err[-2500:]}"
              for i, ((proc, _, _), (_, err)) in enumerate(zip(started, outputs)) if proc.returncode]
    assert not failed, "\n".join(failed)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def _train(backend: str, toml: Path, run: Path, steps: int, processes: int) -> list[dict]:
    """Train `run` to `steps` with `processes` processes (1: without --distribute); each one's result."""
    return _finish(_start(backend, toml, run, steps, processes))


def _final_state(run: Path) -> list[np.ndarray]:
    from nbgan_app import checkpoints

    step, path = checkpoints.latest_checkpoint(run)
    assert step == STEPS
    return checkpoints.read_state(path)


@pytest.fixture(scope="module")
def toml(tiny_config, tiny_cubes, tmp_path_factory) -> Path:
    """configs/tiny.toml on the session's simulated cubes."""
    text = (ROOT / "configs" / "tiny.toml").read_text()
    text = text.replace('cache = "data/tiny-sim"', f'cache = "{tiny_config.data.simulation.cache}"')
    path = tmp_path_factory.mktemp("multiprocess") / "tiny.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def reference(toml, tmp_path_factory):
    """backend -> (one-process run, uninterrupted two-process run, the two processes' results), made once."""
    made = {}

    def runs(backend: str):
        if backend not in made:
            root = tmp_path_factory.mktemp(f"reference-{backend}")
            _train(backend, toml, root / "single", STEPS, 1)
            results = _train(backend, toml, root / "pair", STEPS, PROCESSES)
            made[backend] = (root / "single", root / "pair", results)
        return made[backend]

    return runs


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_train_as_one_process_on_the_global_batch(backend, reference):
    from nbgan_app import rundir

    single, pair, results = reference(backend)
    assert [r["process"] for r in results] == [0, 1]
    assert all(r["state"] == "finished" and r["step"] == STEPS for r in results)
    # the chief alone writes: one metrics record per step, and its pid in state.json
    assert rundir.read_state(pair)["pid"] == results[0]["pid"]
    multi, one = rundir.read_metrics(pair), rundir.read_metrics(single)
    assert [r["step"] for r in multi] == [r["step"] for r in one] == list(range(1, STEPS + 1))
    for a, b in zip(multi, one):
        for key in LOSSES:
            assert np.isfinite(a[key])
            np.testing.assert_allclose(a[key], b[key], rtol=LOSS_RTOL, atol=LOSS_ATOL, err_msg=key)
    assert (pair / rundir.SAMPLES / rundir.LATEST_SAMPLES).is_file()  # the chief's monitor ran
    ours, theirs = _final_state(pair), _final_state(single)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=WEIGHT_ATOL)
    # the comparison is not vacuous: the last 2 steps moved the weights far beyond the tolerance
    from nbgan_app import checkpoints

    halfway = checkpoints.read_state(checkpoints.list_checkpoints(single)[0][1])
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(theirs, halfway)) > 100 * WEIGHT_ATOL


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_stopped_and_started_again_resume_exactly(backend, reference, toml, tmp_path):
    from nbgan_app import rundir

    _, pair, _ = reference(backend)
    run = tmp_path / "run"
    _train(backend, toml, run, 2, PROCESSES)
    assert rundir.read_state(run)["step"] == 2
    results = _train(backend, toml, run, STEPS, PROCESSES)
    assert all(r["start"] == 2 and r["step"] == STEPS for r in results)
    assert [r["step"] for r in rundir.read_metrics(run)] == list(range(1, STEPS + 1))
    for a, b in zip(rundir.read_metrics(run), rundir.read_metrics(pair)):
        for key in LOSSES:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for a, b in zip(_final_state(run), _final_state(pair)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_after_the_same_step_with_a_checkpoint(toml, tmp_path):
    """The stop request is agreed: the process that did not get the signal stops with the one that did."""
    from nbgan_app import checkpoints, rundir

    run = tmp_path / "run"
    started = _start("tensorflow", toml, run, 100_000, PROCESSES)
    deadline = time.time() + TIMEOUT
    while not (checkpoints.latest_checkpoint(run) or (0,))[0] and time.time() < deadline:
        assert all(proc.poll() is None for proc, _, _ in started), "a process ended before its first checkpoint"
        time.sleep(0.5)
    started[1][0].send_signal(signal.SIGTERM)  # the non-chief only: the chief must stop too
    results = _finish(started)
    state = rundir.read_state(run)
    assert state["state"] == "stopped" and [r["state"] for r in results] == ["stopped", "stopped"]
    assert results[0]["step"] == results[1]["step"] == state["step"] == checkpoints.latest_checkpoint(run)[0]
    assert state["step"] < 100_000


# --- where the processes come from (no process started) -------------------------------------------


def test_explicit_variables_name_the_processes():
    from nbgan_app.cluster import Processes, processes_from_env

    env = {"NBGAN_NUM_PROCESSES": "2", "NBGAN_PROCESS_ID": "1", "NBGAN_COORDINATOR": "node1:29500,node2:29501"}
    for backend in BACKENDS:
        found = processes_from_env(env, backend)
        assert found == Processes(2, 1, ("node1:29500", "node2:29501"), "NBGAN_*") and not found.chief
    one = dict(env, NBGAN_COORDINATOR="node1:29500")
    assert processes_from_env(one, "jax").addresses == ("node1:29500",)  # JAX needs the coordinator only
    assert processes_from_env({}, "jax") == Processes() and Processes().chief


@pytest.mark.parametrize("env, backend, culprit", [
    ({"NBGAN_NUM_PROCESSES": "2", "NBGAN_PROCESS_ID": "0"}, "jax", "NBGAN_COORDINATOR: not set"),
    ({"NBGAN_NUM_PROCESSES": "2", "NBGAN_PROCESS_ID": "2", "NBGAN_COORDINATOR": "h:1"}, "jax", "NBGAN_PROCESS_ID"),
    ({"NBGAN_NUM_PROCESSES": "two", "NBGAN_PROCESS_ID": "0", "NBGAN_COORDINATOR": "h:1"}, "jax", "NBGAN_NUM_PROCESSES"),
    ({"NBGAN_NUM_PROCESSES": "2", "NBGAN_PROCESS_ID": "0", "NBGAN_COORDINATOR": "h"}, "jax", "NBGAN_COORDINATOR"),
    ({"NBGAN_NUM_PROCESSES": "3", "NBGAN_PROCESS_ID": "0", "NBGAN_COORDINATOR": "h:1,h:2"}, "jax", "NBGAN_COORDINATOR"),
    ({"NBGAN_NUM_PROCESSES": "2", "NBGAN_PROCESS_ID": "0", "NBGAN_COORDINATOR": "h:1"}, "tensorflow",
     "NBGAN_COORDINATOR: TensorFlow needs the host:port of each"),
    ({"TF_CONFIG": "{not json"}, "tensorflow", "TF_CONFIG"),
    ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_JOB_ID": "x"},
     "jax", "SLURM_JOB_ID"),
])
def test_a_malformed_variable_is_refused_in_one_line_naming_it(env, backend, culprit):
    from nbgan_app.cluster import processes_from_env
    from nbgan_app.errors import InputError

    with pytest.raises(InputError) as caught:
        processes_from_env(env, backend)
    assert str(caught.value).startswith(culprit.split(":")[0]) and culprit in str(caught.value)
    assert "\n" not in str(caught.value)


def test_tf_config_is_taken_as_it_is_on_tensorflow_only():
    from nbgan_app.cluster import processes_from_env

    tf_config = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
                            "task": {"type": "worker", "index": 1}})
    found = processes_from_env({"TF_CONFIG": tf_config}, "tensorflow")
    assert (found.count, found.index, found.addresses, found.tf_config) == (3, 2, ("a:1", "b:2", "c:3"), True)
    assert processes_from_env({"TF_CONFIG": tf_config}, "jax").count == 1


def test_slurm_variables_inside_srun_name_the_processes():
    from nbgan_app.cluster import expand_hostlist, expand_tasks_per_node, processes_from_env

    assert expand_hostlist("gpu[07-09,11],login1,n[8-10]x") == \
        ["gpu07", "gpu08", "gpu09", "gpu11", "login1", "n8x", "n9x", "n10x"]
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    env = {"SLURM_JOB_ID": "4097", "SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "8",
           "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)"}
    found = processes_from_env(env, "tensorflow")
    port = 61440 + 4097 % 4096  # the port jax.distributed picks under Slurm
    assert (found.count, found.index, found.source) == (4, 3, "SLURM_*")
    assert found.addresses == (f"gpu07:{port}", f"gpu07:{port + 1}", f"gpu08:{port}", f"gpu08:{port + 1}")
    assert processes_from_env(dict(env, NBGAN_PORT="29500"), "jax").addresses[0] == "gpu07:29500"
    # one task, or a batch script's own shell outside srun (no SLURM_STEP_*), is one process
    assert processes_from_env(dict(env, SLURM_STEP_NUM_TASKS="1"), "jax").count == 1
    batch_shell = {k: v for k, v in env.items() if not k.startswith("SLURM_STEP_")}
    assert processes_from_env(dict(batch_shell, SLURM_PROCID="0"), "jax").count == 1


def test_each_process_feeds_its_rows_of_every_batch_part_by_part():
    from nbgan_app.distribute import ProcessRows

    fine, coarse = np.arange(8 * 3).reshape(8, 3), -np.arange(8)
    batches = [(fine + 100 * i, coarse - 100 * i) for i in range(3)]
    second = ProcessRows(batches, 1, 4)
    assert len(second) == 3
    rows_fine, rows_coarse = second[2]
    np.testing.assert_array_equal(rows_fine, fine[2:4] + 200)
    np.testing.assert_array_equal(rows_coarse, coarse[2:4] - 200)
    np.testing.assert_array_equal(ProcessRows([fine], 3, 4)[0], fine[6:8])


def test_one_process_agrees_with_itself():
    from nbgan_app.distribute import agree, any_process, together
    from nbgan_app.errors import InputError

    assert agree(7) == (7, 7) and any_process(True) and not any_process(False)
    with pytest.raises(InputError, match="its own"):
        with together():
            raise InputError("its own")


def test_a_bad_process_variable_refuses_train_before_anything_is_made(tiny_toml, tmp_path):
    run = tmp_path / "run"
    env = dict(_env("tensorflow", None), NBGAN_NUM_PROCESSES="2", NBGAN_PROCESS_ID="5",
               NBGAN_COORDINATOR="127.0.0.1:1,127.0.0.1:2")
    done = subprocess.run([sys.executable, "-m", "nbgan_app", "train", "--config", str(tiny_toml), "--scale", "3",
                           "--run-dir", str(run), "--distribute", "--quiet"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == "nbgan train: error: NBGAN_PROCESS_ID: expected a whole number from 0 to 1. " \
                                  "Received: '5'"
    assert not run.exists()


# --- the worker (runs in the subprocess) ------------------------------------------------------------


def worker(toml: str, run_dir: str, steps: str, distribute: str) -> None:
    """Train `run_dir` to `steps` (the config above); print this process's result as one JSON line."""
    import keras

    from nbgan_app.config import load_config
    from nbgan_app.models import factory
    from nbgan_app.training import train

    def sgd(train_config):
        return (keras.optimizers.SGD(LEARNING_RATE, name="critic_optimizer"),
                keras.optimizers.SGD(LEARNING_RATE, name="generator_optimizer", use_ema=True, ema_momentum=EMA))

    factory.build_optimizers = sgd
    config = load_config(toml)
    jit = "on" if keras.backend.backend() == "jax" else "off"  # JAX compiles in a quarter of its eager time
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, batch_size=BATCH, jit_compile=jit, generator_ema=EMA))
    state = train(config, "3", Path(run_dir), steps=int(steps), progress=False, distribute=distribute == "1")
    print(json.dumps({"process": state["process"], "pid": os.getpid(), "state": state["state"],
                      "step": state["step"], "start": state["start"]}))


if __name__ == "__main__":
    worker(*sys.argv[1:])
