"""Data-parallel training (`--distribute`) on a CPU split into 2 devices, against single-device training.

The device split must happen before JAX or TensorFlow initialise, and this
pytest process has already imported TensorFlow, so every check runs in a
fresh subprocess: this file run as a script (`python tests/test_distribute.py
BACKEND SCALES LEVELS_DIR OUT.json JIT`) is the worker; `nbgan train --distribute`
runs as a process too. The tests pick the backend
themselves, so they are not marked `backends` (they run once).

What the worker measures, for the tiny config with a global batch of 4:
- the split: JAX: the sharding of the step's input (its device set and the
  per-device shard shape); TensorFlow: num_replicas_in_sync and the batch
  size every replica sees (gathered across replicas inside the step);
- the losses of 2 steps and the weights after them, distributed and single-device,
  from the same initial weights, seed state and batches, with plain SGD (its
  update is linear in the gradient, so a wrong gradient scale shows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICES = 2
BATCH = 4
STEPS = 2
LEARNING_RATE = 0.01
LOG_KEYS = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")


def _subprocess_env(backend: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    if backend == "jax":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}".strip()
    return env


# The whole-cube model, and a conditional windowed one where it is cheap: JAX compiles each
# step (single and distributed) for about 10 s per scale on 2 cores, so JAX checks M3 only.
SCALES = {"tensorflow": ("3", "2"), "jax": ("3",)}
# Tolerances: float32 steps whose sums over the batch are split into per-device partial
# sums and then added (reduction order differs). Measured differences are ~1e-7 (losses,
# relative) and ~1e-7 (weights, absolute, of magnitude ~1); a wrong gradient scale moves the
# weights by ~0.1 after 2 SGD steps, and unshared random numbers change the losses by ~1e-2.
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6
WEIGHT_ATOL = 1e-5


@pytest.fixture(scope="module")
def levels_dir(tiny_config, tiny_cubes, tmp_path_factory):
    """Each tested scale's transformed level cubes of the tiny data, as LEVELS_DIR/<scale>.npy."""
    from nbgan_app.training_setup import scale_levels

    folder = tmp_path_factory.mktemp("levels")
    for scale in ("3", "2"):
        np.save(folder / f"{scale}.npy", scale_levels(tiny_config, scale, tiny_cubes))
    return folder


def _compare(backend, levels_dir, tmp_path, jit):
    out = tmp_path / "result.json"
    args = [backend, ",".join(SCALES[backend]), str(levels_dir), str(out), jit]
    done = subprocess.run([sys.executable, __file__, *args],
                          env=_subprocess_env(backend), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _assert_matches_single_device(result):
    assert result["replicas"] == DEVICES
    assert len(result["multi_logs"]) == len(result["single_logs"]) == STEPS
    for multi, single in zip(result["multi_logs"], result["single_logs"]):
        for key in LOG_KEYS:
            assert np.isfinite(multi[key])
            np.testing.assert_allclose(multi[key], single[key], rtol=LOSS_RTOL, atol=LOSS_ATOL, err_msg=key)
    assert result["weights_moved"] > 100 * WEIGHT_ATOL  # the comparison below is not vacuous
    assert result["weight_diff"] < WEIGHT_ATOL


def test_tensorflow_mirrored_strategy_splits_batch_and_matches_single_device(levels_dir, tmp_path):
    backend = "tensorflow"
    results = _compare(backend, levels_dir, tmp_path, jit="off")
    for scale in SCALES[backend]:
        result = results[scale]
        for logs in result["multi_logs"]:  # gathered inside the step from every replica
            assert logs["replicas"] == DEVICES
            assert [logs[f"replica_batch_{i}"] for i in range(DEVICES)] == [BATCH // DEVICES] * DEVICES
        _assert_matches_single_device(result)


def test_jax_data_parallel_splits_batch_and_matches_single_device(levels_dir, tmp_path):
    backend = "jax"
    results = _compare(backend, levels_dir, tmp_path, jit="on")
    for scale in SCALES[backend]:
        result = results[scale]
        assert result["seen"], "the probe saw no step input"
        for seen in result["seen"]:  # the sharding the step's input arrived with
            assert seen["devices"] == DEVICES and seen["shard"][0] == BATCH // DEVICES
        _assert_matches_single_device(result)


# TensorFlow has no environment variable for logical devices: split the CPU, then run the CLI.
_SPLIT = f"from nbgan_app.distribute import split_tensorflow_cpu; split_tensorflow_cpu({DEVICES}); "
_CLI = "import sys; from nbgan_app.cli import main; sys.exit(main(sys.argv[1:]))"




def _train_cli(backend, tiny_toml, run, steps=2):
    launch = (_SPLIT if backend == "tensorflow" else "") + _CLI
    args = ["train", "--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", str(steps),
            "--distribute", "--quiet"]
    return subprocess.run([sys.executable, "-c", launch, *args], env=_subprocess_env(backend), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_train_cli_distribute_end_to_end(backend, tiny_toml, tmp_path):
    from nbgan_app import checkpoints, rundir

    if backend == "jax":  # JAX's default (auto) compiles the step: a quarter of the eager CPU time
        tiny_toml.write_text(tiny_toml.read_text().replace('jit_compile = "off"', 'jit_compile = "auto"'))
    run = tmp_path / "run"
    done = _train_cli(backend, tiny_toml, run)
    assert done.returncode == 0, done.stderr[-3000:]
    records = rundir.read_metrics(run)
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert all(np.isfinite(record[k]) for k in LOG_KEYS)
    assert checkpoints.latest_checkpoint(run)[0] == 2
    assert rundir.read_state(run)["state"] == "finished"


def test_train_cli_distribute_second_stage_switches_and_resumes_on_tensorflow(tiny_toml, tmp_path):
    """Under the mirrored strategy an optimizer's learning rate is a MirroredVariable: the second stage
    must still read it, at the switch and at a resume after it (which sees the lowered rates, or refuses
    the run as trained past refine_at at the first stage's rates)."""
    from nbgan_app import checkpoints

    text = tiny_toml.read_text().replace("[m3]\n", "[m3]\nrefine_at = 2\nrefine_rate = 0.1\n", 1)
    tiny_toml.write_text(text)
    run = tmp_path / "run"
    first = _train_cli("tensorflow", tiny_toml, run, steps=4)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "second stage from step 2" in first.stderr
    again = _train_cli("tensorflow", tiny_toml, run, steps=6)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "second stage" not in again.stderr  # switched once, recognised from the restored rates
    assert checkpoints.latest_checkpoint(run)[0] == 6


def test_train_cli_distribute_on_torch_is_input_error(tiny_toml, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--config", str(tiny_toml), "--scale", "3", "--run-dir", str(run), "--steps", "1",
            "--distribute", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "nbgan_app", *args], env=_subprocess_env("torch"), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "--distribute" in done.stderr and "torch" in done.stderr
    assert not run.exists()  # refused before the run directory is made


# --- the worker (runs in the subprocess) ------------------------------------------------------------


def _split_devices(backend: str) -> None:
    if backend == "tensorflow":
        from nbgan_app.distribute import split_tensorflow_cpu

        split_tensorflow_cpu(DEVICES)


def _batch_probe(gan, seen: list) -> None:
    """Wrap the model's train_step to record how much of the global batch each device gets."""
    import keras

    step = gan.train_step
    if keras.backend.backend() == "jax":
        import jax

        def record(sharding, shape):
            seen.append({"devices": len(sharding.device_set), "shard": list(sharding.shard_shape(shape))})

        def probed(state, data):
            x = keras.utils.unpack_x_y_sample_weight(data)[0]
            if isinstance(x, jax.core.Tracer):  # jit: the sharding the compiled step was given
                jax.debug.inspect_array_sharding(x, callback=lambda s: record(s, x.shape))
            else:
                record(x.sharding, x.shape)
            return step(state, data)
    else:
        import tensorflow as tf

        def probed(data):
            x = keras.utils.unpack_x_y_sample_weight(data)[0]
            context = tf.distribute.get_replica_context()
            local = tf.shape(x)[:1]
            sizes = context.all_gather(local, axis=0)  # every replica's batch, in replica order
            logs = dict(step(data))
            logs.update({f"replica_batch_{i}": tf.cast(sizes[i], "float32") for i in range(DEVICES)})
            logs["replicas"] = tf.constant(float(context.num_replicas_in_sync))
            return logs
    gan.train_step = probed


def _train(config, scale, levels, initial, distribute):
    """Logs of every step and the final weights of `STEPS` steps from the `initial` weights."""
    import keras

    from nbgan_app.distribute import data_parallel
    from nbgan_app.training_setup import build_compiled_gan, make_batches

    records, seen = [], []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            records.append({k: float(v) for k, v in logs.items()})
            self.model.reset_metrics()  # per-step losses, not running means

    with data_parallel(distribute) as replicas:
        gan = build_compiled_gan(config, scale)
        # plain SGD: its update is linear in the gradient, so a wrong gradient scale shows
        # (RMSprop and Adam divide it out)
        sgd = keras.optimizers.SGD
        gan.compile(d_optimizer=sgd(LEARNING_RATE), g_optimizer=sgd(LEARNING_RATE), jit_compile=gan.jit_compile)
        if initial is not None:
            gan.set_weights(initial)
        start = [w.copy() for w in gan.get_weights()]
        if distribute:
            _batch_probe(gan, seen)
        gan.fit(make_batches(config, scale, levels, 0, STEPS), epochs=1, verbose=0, callbacks=[Record()],
                shuffle=False)
        final = gan.get_weights()
    return {"replicas": replicas, "logs": records, "seen": seen, "start": start, "final": final}


def worker(backend: str, scales: str, levels_dir: str, out_path: str, jit: str = "off") -> None:
    """For each scale in `scales` (comma-separated; levels in LEVELS_DIR/<scale>.npy), train
    distributed and single-device; write the comparison to `out_path` (JSON, keyed by scale)."""
    import dataclasses

    from nbgan_app.config import load_config

    _split_devices(backend)
    config = load_config(ROOT / "configs" / "tiny.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=BATCH,
                                                                  jit_compile=jit))
    results = {}
    for scale in scales.split(","):
        levels = np.load(Path(levels_dir) / f"{scale}.npy")
        single = _train(config, scale, levels, None, distribute=False)
        multi = _train(config, scale, levels, single["start"], distribute=True)
        results[scale] = {
            "replicas": multi["replicas"], "seen": multi["seen"], "multi_logs": multi["logs"],
            "single_logs": single["logs"],
            "weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(single["final"], multi["final"])),
            "weights_moved": max(float(np.max(np.abs(a - b))) for a, b in zip(single["final"], single["start"])),
        }
    Path(out_path).write_text(json.dumps(results))


if __name__ == "__main__":
    worker(*sys.argv[1:])
