"""`nbgan bench --gpu`: the figures that only a GPU can give, in about 8 minutes.

- Train step of the paper config's M3 and M1 per backend, fp32 and
  `mixed_bfloat16`, XLA on and off where the backend has both (TensorFlow:
  graph and XLA; JAX: eager and XLA; PyTorch: eager only, as `torch.compile`
  refuses the penalty's double backward). Each backend runs in its own process
  (`train_step` workers), on synthetic batches shaped like the real ones.
  Ratios: a bf16 row against the same mode in fp32; an fp32 row against the
  backend's default mode; a backend's default against TensorFlow's default.
- Sampling order: wavefront against raster, two 128^3 cubes (`sampling`); the
  sampler's compiled generator calls against eager ones, one 128^3 cube.
- One paper-chain 256^3 cube (M3 -> M2 -> M1, untrained weights of the paper
  architectures: the cost does not depend on the weights) against the jaxpm
  PM simulation of the same grid, on the same GPU.

Rows have the shape of every other suite's, so `--json` writes the same format.
Without a visible GPU the mode refuses to start: its figures would be CPU
figures under a GPU heading.
"""

from __future__ import annotations

from nbgan_app.benchmarks import sampling, train_step
from nbgan_app.errors import InputError

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}
# The backends' compiled and uncompiled paths: XLA on and off.
MODES = {"tensorflow": ("graph", "xla"), "jax": ("eager", "xla"), "torch": ("eager",)}
SCALES = ("3", "1")
REPEATS = 3
# A group's time limit: the paper M3's XLA compile took minutes on a CPU, seconds on a GPU.
GROUP_TIMEOUT_S = 150


def visible_gpus() -> int:
    """GPUs TensorFlow can see (the backend the sampling rows run on)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def groups() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(backend, scale, modes, precision name): one worker process each."""
    return [(backend, scale, modes, precision)
            for backend, modes in MODES.items() for scale in SCALES for precision in PRECISIONS]


def _reference(results: dict, key: tuple) -> tuple[str, dict | None]:
    backend, scale, mode, precision = key
    if precision != "fp32":
        return f"same step, {mode} fp32", results.get((backend, scale, mode, "fp32"))
    default = train_step.DEFAULT_MODE[backend]
    if mode != default:
        return f"same step, {default} fp32", results.get((backend, scale, default, "fp32"))
    if backend != "tensorflow":
        return "same step, tensorflow graph fp32", results.get(("tensorflow", scale, "graph", "fp32"))
    return "", None


def train_step_rows(results: dict) -> list[dict]:
    """Table rows from {(backend, scale, mode, precision): worker result}."""
    rows = []
    for key, r in results.items():
        backend, scale, mode, precision = key
        reference, ref = _reference(results, key)
        usable = ref is not None and "median_s" in ref and "median_s" in r
        rows.append({
            "benchmark": f"train step paper M{scale} {backend} {mode} {precision} (GPU)",
            "ours_s": r.get("median_s"),
            "reference": reference if usable else "",
            "reference_s": ref["median_s"] if usable else None,
            "ratio": ref["median_s"] / r["median_s"] if usable else None,
            "repeats": r.get("repeats", 0),
            "note": r["error"] if "error" in r else f"first step {r['first_s']:.1f} s",
        })
    return rows


def run(quick: bool = False) -> list[dict]:
    """Every GPU figure; `quick` is ignored (the mode is sized to fit 8 minutes as it is)."""
    if visible_gpus() == 0:
        raise InputError("--gpu: no GPU is visible to TensorFlow (check CUDA_VISIBLE_DEVICES and the driver)")
    results = {}
    for backend, scale, modes, precision in groups():
        found = train_step.run_group(backend, "paper", scale, modes, REPEATS,
                                      {"precision": PRECISIONS[precision]}, GROUP_TIMEOUT_S * len(modes))
        for mode, r in found.items():
            results[(backend, scale, mode, precision)] = r
    rows = train_step_rows(results)
    rows += [sampling.bench_orders(quick=False), sampling.bench_compiled(quick=False)]
    rows += sampling.bench_against_simulation(quick=False, chains=[("paper", ("3", "2", "1"))])
    return rows
