"""Train-step time per backend, compiled and eager, at the demo and paper sizes.

Each (backend, size) group runs in its own process (the backend is fixed at
import time), its modes one after the other: each mode builds the scale's
WGAN-GP from the config, runs `fit` over a few synthetic batches shaped like
the real ones, and times every step with a callback; the first step
(tracing/compilation) is reported separately from the median of the rest.
One step = `num_critic_steps` critic updates and one generator update.

Modes: "eager" (`run_eagerly=True`: op by op), "graph" (the compiled step
without XLA: `tf.function` on TensorFlow), "xla" (`jit_compile=True`; on JAX
the only compiled path). PyTorch runs eager only: `torch.compile` refuses the
penalty's double backward.

Ratios: a compiled mode against the same step eager, when eager was measured;
otherwise a backend's default mode against TensorFlow's default (graph), the
same step in the same run.

TensorFlow's graph step also runs with its oneDNN kernels off
(`TF_ENABLE_ONEDNN_OPTS=0`, the row's ratio against the same step with them on,
as nbgan sets them; see `nbgan_app/__init__.py`): TensorFlow would leave them off
on CPUs without AVX512_VNNI, AVX512_BF16 or AMX.

Quick: the demo M3 at batch 2 with one critic update per step, TensorFlow
eager and graph (oneDNN on and off), and PyTorch. TensorFlow's XLA (first step
15 s) and JAX are left to the full run: on JAX, building the demo M3 alone took
40 to 75 s on the 2 shared cores, as every initializer is compiled op by op,
which is most of the quick run's 2-minute budget (`make test` still runs the
train step on JAX, in its tests).
Full: every mode of the demo M3 and M1 at the config's batch and critic steps,
and the default modes of the paper's M3 and M1.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODES = {"tensorflow": ("eager", "graph", "xla"), "jax": ("eager", "xla"), "torch": ("eager",)}
QUICK_MODES = {"tensorflow": ("eager", "graph"), "torch": ("eager",)}
DEFAULT_MODE = {"tensorflow": "graph", "jax": "xla", "torch": "eager"}  # what jit_compile="auto" picks on a CPU
QUICK_TRAIN = {"batch_size": 2, "num_critic_steps": 1}
ONEDNN_OFF = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def _groups(quick: bool) -> list[tuple[str, str, str, tuple[str, ...], dict]]:
    """(backend, config, scale, modes, extra environment): one worker process each."""
    scales = ("3",) if quick else ("3", "1")
    groups = [(backend, "demo", scale, modes, {})
              for backend, modes in (QUICK_MODES if quick else MODES).items() for scale in scales]
    groups += [("tensorflow", "demo", scale, ("graph",), ONEDNN_OFF) for scale in scales]
    if not quick:
        for backend in ("tensorflow", "torch"):
            groups += [(backend, "paper", scale, (DEFAULT_MODE[backend],), {}) for scale in ("3", "1")]
    return groups


def _measure_mode(config, scale: str, mode: str, repeats: int) -> dict:
    import dataclasses

    import keras
    import numpy as np

    from nbgan_app.training_setup import build_compiled_gan, make_batches

    jit = "on" if mode == "xla" else "off"
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, jit_compile=jit))
    side = config.level_size(scale)
    rng = np.random.default_rng(0)
    levels = rng.gamma(0.5, 1.0, size=(2,) + (side,) * 3).astype(np.float32)
    gan = build_compiled_gan(config, scale)
    gan.run_eagerly = mode == "eager"
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["critic_loss"])  # wait for the step to finish
            times.append(time.perf_counter() - self.t0)

    gan.fit(make_batches(config, scale, levels, 0, repeats + 1), epochs=1, verbose=0, callbacks=[Timer()])
    return {"first_s": times[0], "median_s": statistics.median(times[1:]), "repeats": len(times) - 1}


def measure(config_name: str, scale: str, modes: list[str], repeats: int, train: dict) -> dict:
    """Run in the worker process: {mode: times of `repeats` + 1 train steps on synthetic data}.

    `train` overrides TrainConfig fields (the quick run's smaller batch). A mode
    that fails reports its error and the others still run.
    """
    import dataclasses

    from nbgan_app.config import load_config

    config = load_config(ROOT / "configs" / f"{config_name}.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, **train))
    results = {}
    for mode in modes:
        try:
            results[mode] = _measure_mode(config, scale, mode, repeats)
        except Exception as exc:  # noqa: BLE001 - reported in the table, never fatal to the suite
            results[mode] = {"error": f"{type(exc).__name__}: {exc}"[:120]}
    return results


def run_group(backend, config_name, scale, modes, repeats, train, timeout, extra_env=None) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **(extra_env or {}))
    code = ("import json; from nbgan_app.benchmarks.train_step import measure; "
            f"print('RESULT', json.dumps(measure({config_name!r}, {scale!r}, {list(modes)!r}, {repeats}, "
            f"{train!r})))")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {mode: {"error": f"over {timeout} s"} for mode in modes}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    error = (out.stderr.strip().splitlines() or ["failed"])[-1][:120]
    return {mode: {"error": error} for mode in modes}


def _reference(results: dict, key: tuple) -> tuple[str, dict | None]:
    """What a row's ratio is taken against: (description, its result), or ("", None)."""
    backend, config_name, scale, mode, onednn_off = key
    if onednn_off:
        on = results.get((backend, config_name, scale, mode, False), {})
        return ("same step, oneDNN on", on) if "median_s" in on else ("", None)
    if mode != "eager" and "median_s" in results.get((backend, config_name, scale, "eager", False), {}):
        return "same step, eager", results[(backend, config_name, scale, "eager", False)]
    tf_default = results.get(("tensorflow", config_name, scale, DEFAULT_MODE["tensorflow"], False), {})
    if backend != "tensorflow" and mode == DEFAULT_MODE[backend] and "median_s" in tf_default:
        return "same step, tensorflow graph", tf_default
    return "", None


def run(quick: bool) -> list[dict]:
    repeats = 3 if quick else 5
    train = QUICK_TRAIN if quick else {}
    results = {}
    for backend, config_name, scale, modes, extra_env in _groups(quick):
        timeout = (300 if config_name == "demo" else 1200) * len(modes)
        found = run_group(backend, config_name, scale, modes, repeats, train, timeout, extra_env)
        for mode, r in found.items():
            results[(backend, config_name, scale, mode, bool(extra_env))] = r
    size = " (batch 2, 1 critic update)" if quick else ""
    rows = []
    for key, r in results.items():
        backend, config_name, scale, mode, onednn_off = key
        reference, ref = _reference(results, key)
        ratio = ref["median_s"] / r["median_s"] if ref is not None and "median_s" in r else None
        default = " oneDNN off" if onednn_off else " (default)" if mode == DEFAULT_MODE[backend] else ""
        rows.append({
            "benchmark": f"train step {config_name} M{scale}{size} {backend} {mode}{default}",
            "ours_s": r.get("median_s"),
            "reference": reference if ratio is not None else "",
            "reference_s": ref["median_s"] if ratio is not None else None,
            "ratio": ratio,
            "repeats": r.get("repeats", 0),
            "note": r["error"] if "error" in r else f"first step {r['first_s']:.1f} s",
        })
    return rows
