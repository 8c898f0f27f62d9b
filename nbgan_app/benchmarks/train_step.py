"""Train-step time per backend, compiled and eager, at the demo and paper sizes.

Each (backend, size, compile) case runs in its own process (the backend is
fixed at import time): it builds the scale's WGAN-GP from the config, runs
`fit` over a few synthetic batches shaped like the real ones, and times every
step with a callback; the first step (tracing/compilation) is reported
separately from the median of the rest. One step = `num_critic_steps` critic
updates and one generator update.
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


def _cases(quick: bool) -> list[tuple[str, str, str, str]]:
    """(backend, config, scale, jit) tuples."""
    cases = []
    for backend, jits in (("tensorflow", ("off", "on")), ("jax", ("on", "off")), ("torch", ("off",))):
        for jit in jits:
            cases.append((backend, "demo", "3", jit))
            cases.append((backend, "demo", "1", jit))
    if not quick:
        for backend in ("tensorflow", "torch"):
            cases.append((backend, "paper", "3", "off"))
            cases.append((backend, "paper", "1", "off"))
    if quick:
        # JAX eager (jit off) is an order of magnitude slower on this CPU; one case shows it
        cases = [c for c in cases if not (c[0] == "jax" and c[3] == "off" and c[2] == "1")]
    return cases


def measure(config_name: str, scale: str, jit: str, repeats: int) -> dict:
    """Run in the worker process: times of `repeats` + 1 train steps on synthetic data."""
    import dataclasses

    import keras
    import numpy as np

    from nbgan_app.config import load_config
    from nbgan_app.training import build_compiled_gan, make_batches

    config = load_config(ROOT / "configs" / f"{config_name}.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, jit_compile=jit))
    side = config.level_size(scale)
    rng = np.random.default_rng(0)
    levels = rng.gamma(0.5, 1.0, size=(2,) + (side,) * 3).astype(np.float32)
    gan = build_compiled_gan(config, scale)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["critic_loss"])  # wait for the step to finish
            times.append(time.perf_counter() - self.t0)

    gan.fit(make_batches(config, scale, levels, 0, repeats + 1), epochs=1, verbose=0, callbacks=[Timer()])
    return {"first_s": times[0], "median_s": statistics.median(times[1:]), "repeats": len(times) - 1}


def _run_case(backend, config_name, scale, jit, repeats, timeout) -> dict | None:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    code = ("import json,sys; from nbgan_app.benchmarks.train_step import measure; "
            f"print('RESULT', json.dumps(measure({config_name!r}, {scale!r}, {jit!r}, {repeats})))")
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
    for backend, config_name, scale, jit in _cases(quick):
        timeout = 240 if config_name == "demo" else 900
        results[(backend, config_name, scale, jit)] = _run_case(backend, config_name, scale, jit, repeats, timeout)
    rows = []
    for (backend, config_name, scale, jit), r in results.items():
        eager = results.get((backend, config_name, scale, "off"))
        ratio = None
        if jit == "on" and eager and "median_s" in eager and "median_s" in r:
            ratio = eager["median_s"] / r["median_s"]
        rows.append({
            "benchmark": f"train step {config_name} M{scale} {backend} jit={jit}",
            "ours_s": r.get("median_s"),
            "reference": "same step, jit off" if ratio is not None else "",
            "reference_s": eager.get("median_s") if ratio is not None else None,
            "ratio": ratio,
            "repeats": r.get("repeats", 0),
            "note": r["error"] if "error" in r else f"first step {r['first_s']:.1f} s",
        })
    return rows
