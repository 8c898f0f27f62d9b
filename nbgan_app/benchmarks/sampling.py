"""Benchmarks of chained sampling: wavefront against raster, peak memory by output size, against simulation.

- wavefront vs raster: the demo config's M1 generator architecture (untrained:
  timing does not depend on the weights), up-scaling random coarse cubes to
  one cube of 64^3 (quick) or two of 128^3, same seeds; both orders interleaved
  in one process, after a warm-up, medians of three repeats (single runs
  of either order varied by 30 to 45% on a loaded machine). Notes the generator
  calls and whether the outputs agree.
- compiled vs eager: the same generator and cube as above, wavefront order, the sampler's
  compiled calls (`sampling.forward`) against the model called op by op; interleaved, after a
  warm-up (the trace), medians of three repeats; notes the largest difference between the two.
- peak memory: one up-scaling level (patch 32, factor 2, a one-layer Conv3D
  generator), each size in its own subprocess; peak resident set from VmHWM
  (ru_maxrss would carry the parent's over), also less the resident set once
  the generator is built. Quick: 64^3 and 128^3 (most of the peak is the
  runtime there; the figure above the built model is the one to read); full:
  256^3, 512^3, 1024^3 (the 512^3 cube is 8x, the 1024^3 one 64x the 256^3 one
  on disk).
- against simulation: one count cube by chained sampling, real chain planning
  (`plan_chain`) and untrained generators of a config's architectures, against
  `simulate.simulate_box` (jaxpm PM, 20 steps) at the same grid, after its
  compile. Quick: the demo chain Mu -> M2 -> M1 at 64^3. Full: the demo chain
  at 256^3 and the paper's (thesis) chain M3 -> M2 -> M1 at 256^3.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _upscale(generator, side: int, patch: int, factor: int, n_cubes: int, order: str,
             max_batch: int = 64, seed: int = 0) -> tuple[float, int, np.ndarray | None]:
    """Seconds and generator calls to up-scale random coarse cubes to side^3 (coarse written in slabs)."""
    from nbgan_app.sampling.chain import LevelPlan, RunInfo, dataset_specs, run_chain
    from nbgan_app.sampling.writer import SampleFile

    coarse_side = side // factor
    plans = [LevelPlan(2, coarse_side, coarse_side, None, None, None, "levels/2"),
             LevelPlan(1, side, patch, factor, None, RunInfo(Path("bench"), "1", None), "data")]
    counting = _Counting(generator)
    with tempfile.TemporaryDirectory() as tmp:
        with SampleFile(Path(tmp) / "out.h5", dataset_specs(plans), n_cubes, {}) as out:
            coarse = out.h5["levels/2"]
            rng = np.random.default_rng(seed)
            for cube in range(n_cubes):
                for k in range(0, coarse_side, patch):  # slabs: bounded memory at any size
                    coarse[cube, k:k + patch] = rng.random((min(patch, coarse_side - k),) + coarse.shape[2:])
            out.target("levels/2").mark_done([(0, 0, 0)])
            started = time.perf_counter()
            run_chain(plans, [None, counting], out, n_cubes, seed=seed, order=order, max_batch=max_batch)
            seconds = time.perf_counter() - started
            first = out.h5["data"][0, :patch] if side <= 128 else None
    return seconds, counting.calls, first


class _Counting:
    def __init__(self, generator):
        self.generator, self.calls = generator, 0

    def __call__(self, x):
        self.calls += 1
        return self.generator(x)


def _config(name: str):
    from nbgan_app.config import load_config

    return load_config(ROOT / "configs" / f"{name}.toml")


def _generator(config, scale: str):
    """An untrained generator of the config's architecture for `scale`, as a sampler callable."""
    from nbgan_app.models.factory import build_generator
    from nbgan_app.sampling.runs import keras_generator

    return keras_generator(build_generator(config.model(scale), scale, config))


def bench_orders(quick: bool) -> dict:
    config = _config("demo")
    generator = _generator(config, "1")
    side, patch, factor = (64 if quick else 128), config.pyramid.patch, config.factor("1")
    n_cubes, repeats = (1 if quick else 2), 3
    _upscale(generator, 2 * patch, patch, factor, n_cubes, "wavefront")  # warm-up: build, first traces
    _upscale(generator, 2 * patch, patch, factor, n_cubes, "raster")
    times, calls, first = {"wavefront": [], "raster": []}, {}, {}
    for _ in range(repeats):
        for order in ("wavefront", "raster"):
            seconds, calls[order], first[order] = _upscale(generator, side, patch, factor, n_cubes, order)
            times[order].append(seconds)
    same = bool(np.allclose(first["wavefront"], first["raster"], rtol=1e-4, atol=1e-4))
    ours, ref = statistics.median(times["wavefront"]), statistics.median(times["raster"])
    cubes = f"{n_cubes} cube{'s' * (n_cubes > 1)}"
    return {"benchmark": f"sampling: wavefront vs raster, demo M1, {cubes} of {side}^3", "ours_s": ours,
            "reference": "raster order (one patch position per call, as released)", "reference_s": ref,
            "ratio": ref / ours, "repeats": repeats,
            "note": f"generator calls {calls['wavefront']} vs {calls['raster']}; same output: {same}"}


def bench_compiled(quick: bool) -> dict:
    """The sampler's compiled generator calls (`sampling.forward`) against eager ones, same model and seeds."""
    import keras

    from nbgan_app.models.factory import build_generator
    from nbgan_app.sampling.runs import keras_generator

    config = _config("demo")
    model = build_generator(config.model("1"), "1", config)
    generators = {"compiled": keras_generator(model), "eager": keras_generator(model, compiled=False)}
    side, patch, factor = (64 if quick else 128), config.pyramid.patch, config.factor("1")
    repeats = 3
    for generator in generators.values():  # warm-up: the trace
        _upscale(generator, 2 * patch, patch, factor, 1, "wavefront")
    times, first = {name: [] for name in generators}, {}
    for _ in range(repeats):
        for name, generator in generators.items():
            seconds, calls, first[name] = _upscale(generator, side, patch, factor, 1, "wavefront")
            times[name].append(seconds)
    gap = float(np.max(np.abs(first["compiled"] - first["eager"])))
    ours, ref = statistics.median(times["compiled"]), statistics.median(times["eager"])
    return {"benchmark": f"sampling: compiled vs eager generator calls, demo M1 on {keras.backend.backend()}, "
                         f"one cube of {side}^3", "ours_s": ours,
            "reference": "the same calls made eagerly (op by op)", "reference_s": ref, "ratio": ref / ours,
            "repeats": repeats, "note": f"generator calls {calls} each; largest difference in the first slab {gap:.1e}"}


def _vm_kib(key: str) -> int:
    """VmHWM / VmRSS of this process in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_child(side: int) -> None:
    """Run in a subprocess: up-scale one cube to side^3 and print JSON with seconds and peak memory."""
    import keras

    from nbgan_app.sampling.runs import keras_generator

    model = keras.Sequential([keras.Input((None, None, None, 9)), keras.layers.Conv3D(1, 3, padding="same")])
    generator = keras_generator(model)
    generator(np.zeros((1, 32, 32, 32, 9), np.float32))
    base_mib = _vm_kib("VmRSS") / 1024
    seconds, calls, _ = _upscale(generator, side, 32, 2, 1, "wavefront")
    peak_mib = _vm_kib("VmHWM") / 1024
    print(json.dumps({"side": side, "seconds": seconds, "calls": calls, "peak_mib": peak_mib,
                      "above_base_mib": peak_mib - base_mib}))


def _child(side: int, timeout: float = 3600) -> dict:
    code = f"from nbgan_app.benchmarks.sampling import memory_child; memory_child({side})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"memory benchmark at {side}^3 failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(quick: bool) -> dict:
    sides = (64, 128) if quick else (256, 512, 1024)
    results = {side: _child(side) for side in sides}
    small, big = sides[0], sides[1]
    figures = "; ".join(f"{s}^3: peak RSS {r['peak_mib']:.0f} MiB ({r['above_base_mib']:.0f} above the "
                        f"built model), {r['seconds']:.1f} s, {r['calls']} calls, cube {s ** 3 * 4 / 2 ** 20:.0f} MiB"
                        for s, r in results.items())
    ratio = results[big]["peak_mib"] / results[small]["peak_mib"]
    return {"benchmark": f"sampling: peak memory, one level, {' vs '.join(f'{s}^3' for s in sides)}",
            "ours_s": results[big]["seconds"], "reference": f"{small}^3 output",
            "reference_s": results[small]["seconds"], "ratio": None, "repeats": 1,
            "note": f"peak RSS {big}^3/{small}^3 = {ratio:.2f} (cube 8x); {figures}"}


def _chain_seconds(name: str, scales: tuple[str, ...], grid: int) -> tuple[float, int]:
    """Seconds (and generator calls) to sample one grid^3 count cube through a chain of `name`'s architectures."""
    from nbgan_app.sampling import particles
    from nbgan_app.sampling.chain import RunInfo, dataset_specs, plan_chain, run_chain
    from nbgan_app.sampling.writer import SampleFile

    config = _config(name)
    plans = plan_chain([RunInfo(Path(f"bench-{s}"), s, config) for s in scales], grid)
    generators = [_Counting(_generator(config, s)) for s in scales]
    with tempfile.TemporaryDirectory() as tmp:
        for p, g in zip(plans, generators):  # warm-up: one call per model on its batch shape
            shape = (1, p.latent_dim) if p.latent_dim else (1,) + (p.patch,) * 3 + (9 if p.factor else 8,)
            g(np.zeros(shape, np.float32))
        started = time.perf_counter()
        with SampleFile(Path(tmp) / "out.h5", dataset_specs(plans), 1, {}) as out:
            run_chain(plans, generators, out, 1, max_batch=config.sample.max_batch,
                      to_counts=lambda y, cube, index: particles.patch_counts(y, config, plans[-1].level, 0, cube,
                                                                                 index))
        return time.perf_counter() - started, sum(g.calls for g in generators) - len(generators)


def _simulation_seconds(grid: int) -> float:
    from nbgan_app.simulate import simulate_box

    sim = dataclasses.replace(_config("demo").data.simulation, particles=grid, mesh=grid, grid=grid, steps=20)
    simulate_box(dataclasses.replace(sim, steps=1), 0)  # compile: the step count is not in the cache key
    started = time.perf_counter()
    simulate_box(sim, 0)
    return time.perf_counter() - started


def bench_against_simulation(quick: bool, chains: list[tuple[str, tuple[str, ...]]] | None = None) -> list[dict]:
    """One cube per chain, (config name, scales), against the simulation; the default chains by `quick`."""
    grid = 64 if quick else 256
    if chains is None:
        chains = [("demo", ("uni", "2", "1"))] + ([] if quick else [("paper", ("3", "2", "1"))])
    sampled = {name: _chain_seconds(name, scales, grid) for name, scales in chains}
    ref = _simulation_seconds(grid)
    rows = []
    for name, scales in chains:
        ours, calls = sampled[name]
        rows.append({"benchmark": f"sampling: one {grid}^3 count cube, {name} chain "
                                  f"{'->'.join('Mu' if s == 'uni' else 'M' + s for s in scales)} vs PM simulation",
                     "ours_s": ours, "reference": f"jaxpm PM simulation, {grid}^3 particles, 20 steps",
                     "reference_s": ref, "ratio": ref / ours, "repeats": 1,
                     "note": f"{name} architectures, untrained weights (same cost), TF fp32, {calls} generator "
                             "calls, HDF5 writing included; simulation after its compile"})
    return rows


def run(quick: bool) -> list[dict]:
    return [bench_orders(quick), bench_compiled(quick), bench_memory(quick), *bench_against_simulation(quick)]


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(json.dumps(row))
