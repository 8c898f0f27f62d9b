"""Train-step time per backend, compiled and eager, at the demo and paper sizes.

Each (backend, size, mode) case runs in its own process (the backend is
fixed at import time): it builds the scale's WGAN-GP from the config, runs
`fit` over a few synthetic batches shaped like the real ones, and times every
step with a callback; the first step (tracing/compilation) is reported
separately from the median of the rest. One step = `num_critic_steps` critic
updates and one generator update.

Modes: "eager" (`run_eagerly=True`: op by op), "graph" (the compiled step
without XLA: `tf.function` on TensorFlow), "xla" (`jit_compile=True`; on JAX
the only compiled path). PyTorch runs eager only: `torch.compile` refuses the
penalty's double backward.
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
DEFAULT_MODE = {"tensorflow": "graph", "jax": "xla", "torch": "eager"}  # what jit_compile="auto" picks on a CPU


def _cases(quick: bool) -> list[tuple[str, str, str, str]]:
    """(backend, config, scale, mode) tuples."""
    cases = []
    for backend, modes in MODES.items():
        for mode in modes:
            for scale in ("3",) if quick else ("3", "1"):
                cases.append((backend, "demo", scale, mode))
    if not quick:
        for backend in ("tensorflow", "torch"):
            cases.append((backend, "paper", "3", DEFAULT_MODE[backend]))
            cases.append((backend, "paper", "1", DEFAULT_MODE[backend]))
    return cases


def measure(config_name: str, scale: str, mode: str, repeats: int) -> dict:
    """Run in the worker process: times of `repeats` + 1 train steps on synthetic data."""
    import dataclasses

    import keras
    import numpy as np

    from nbgan_app.config import load_config
    from nbgan_app.training import build_compiled_gan, make_batches

    config = load_config(ROOT / "configs" / f"{config_name}.toml")
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


def _run_case(backend, config_name, scale, mode, repeats, timeout) -> dict | None:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    code = ("import json,sys; from nbgan_app.benchmarks.train_step import measure; "
            f"print('RESULT', json.dumps(measure({config_name!r}, {scale!r}, {mode!r}, {repeats})))")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:120]}


def run(quick: bool) -> list[dict]:
    repeats = 3 if quick else 5
    results = {}
    for backend, config_name, scale, mode in _cases(quick):
        timeout = 300 if config_name == "demo" else 1200
        results[(backend, config_name, scale, mode)] = _run_case(backend, config_name, scale, mode, repeats,
                                                                 timeout)
    rows = []
    for (backend, config_name, scale, mode), r in results.items():
        eager = results.get((backend, config_name, scale, "eager"))
        ratio = None
        if mode != "eager" and eager and "median_s" in eager and "median_s" in r:
            ratio = eager["median_s"] / r["median_s"]
        default = " (default)" if mode == DEFAULT_MODE[backend] else ""
        rows.append({
            "benchmark": f"train step {config_name} M{scale} {backend} {mode}{default}",
            "ours_s": r.get("median_s"),
            "reference": "same step, eager" if ratio is not None else "",
            "reference_s": eager.get("median_s") if ratio is not None else None,
            "ratio": ratio,
            "repeats": r.get("repeats", 0),
            "note": r["error"] if "error" in r else f"first step {r['first_s']:.1f} s",
        })
    return rows
