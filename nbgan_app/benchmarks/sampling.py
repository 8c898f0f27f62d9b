"""Benchmarks of chained sampling: wavefront against raster, peak memory by output size, against simulation.

- wavefront vs raster: the demo config's M1 generator architecture (untrained:
  timing does not depend on the weights), up-scaling N = 2 coarse cubes to the
  demo size 64^3 (quick) or 128^3, same seeds; both orders in one process,
  after a warm-up call. Notes the number of generator calls.
- peak memory: one up-scaling level (patch 32, factor 2, a one-layer Conv3D
  generator) to 256^3 and 512^3 (and 1024^3 unless quick), each in its own
  subprocess, peak RSS from getrusage; the cube on disk is 8x (64x) larger.
- against simulation: one count cube by the chain Mu -> M2 -> M1 with the demo
  architectures, against `simulate.simulate_box` at the same grid (64^3
  quick, 256^3 otherwise).
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


def _plans(side: int, patch: int, factor: int):
    from nbgan_app.sampling.chain import LevelPlan, RunInfo

    run = RunInfo(Path("bench"), "1", None)
    coarse = side // factor
    return [LevelPlan(2, coarse, coarse, None, None, None, "levels/2"),
            LevelPlan(1, side, patch, factor, None, run, "data")]


def _upscale(generator, side: int, patch: int, factor: int, n_cubes: int, order: str,
             max_batch: int = 64, seed: int = 0) -> tuple[float, int, np.ndarray | None]:
    """Seconds and generator calls to up-scale random coarse cubes to side^3 (coarse written in slabs)."""
    from nbgan_app.sampling.chain import dataset_specs, run_chain
    from nbgan_app.sampling.writer import SampleFile

    plans = _plans(side, patch, factor)
    counting = _Counting(generator)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.h5"
        with SampleFile(path, dataset_specs(plans), n_cubes, {}) as out:
            coarse = out.h5["levels/2"]
            rng = np.random.default_rng(seed)
            for cube in range(n_cubes):
                for k in range(0, coarse.shape[1], patch):  # slabs: bounded memory at any size
                    coarse[cube, k:k + patch] = rng.random((min(patch, coarse.shape[1] - k),) + coarse.shape[2:])
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


def _demo_generator(scale: str, patch: int | None = None):
    from nbgan_app.config import load_config
    from nbgan_app.models.factory import build_generator
    from nbgan_app.sampling.runs import keras_generator

    config = load_config(ROOT / "configs" / "demo.toml")
    if patch is not None:
        config = dataclasses.replace(config, pyramid=dataclasses.replace(config.pyramid, patch=patch))
    return keras_generator(build_generator(config.model(scale), scale, config)), config


def bench_orders(quick: bool) -> dict:
    generator, config = _demo_generator("1")
    side, patch, factor = (64 if quick else 128), config.pyramid.patch, config.factor("1")
    repeats = 2 if quick else 3
    _upscale(generator, 2 * patch, patch, factor, 2, "wavefront")  # warm-up: build, first traces
    times, calls, first = {"wavefront": [], "raster": []}, {}, {}
    for _ in range(repeats):
        for order in ("wavefront", "raster"):
            seconds, calls[order], first[order] = _upscale(generator, side, patch, factor, 2, order)
            times[order].append(seconds)
    same = bool(np.allclose(first["wavefront"], first["raster"], rtol=1e-4, atol=1e-4))
    ours, ref = statistics.median(times["wavefront"]), statistics.median(times["raster"])
    return {"benchmark": f"sampling: wavefront vs raster, demo M1, 2 cubes of {side}^3", "ours_s": ours,
            "reference": "raster order (one patch position per call, as released)", "reference_s": ref,
            "ratio": ref / ours, "repeats": repeats,
            "note": f"generator calls {calls['wavefront']} vs {calls['raster']}; same output: {same}"}


def _tiny_generator():
    import keras

    model = keras.Sequential([keras.Input((None, None, None, 9)), keras.layers.Conv3D(1, 3, padding="same")])
    from nbgan_app.sampling.runs import keras_generator

    return keras_generator(model)


def memory_child(side: int) -> None:
    """Run in a subprocess: up-scale one cube to side^3 and print JSON with seconds and peak RSS."""
    import resource

    seconds, calls, _ = _upscale(_tiny_generator(), side, 32, 2, 1, "wavefront")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": side, "seconds": seconds, "calls": calls, "peak_mib": peak_mib}))


def _child(side: int, timeout: float = 3600) -> dict:
    code = f"from nbgan_app.benchmarks.sampling import memory_child; memory_child({side})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"memory benchmark at {side}^3 failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(quick: bool) -> dict:
    sides = (256, 512) if quick else (256, 512, 1024)
    results = {side: _child(side) for side in sides}
    base = results[256]
    figures = "; ".join(f"{s}^3: {r['peak_mib']:.0f} MiB peak RSS, {r['seconds']:.1f} s, {r['calls']} calls, "
                        f"cube {s ** 3 * 4 / 2 ** 20:.0f} MiB" for s, r in results.items())
    return {"benchmark": "sampling: peak memory, one level, 256^3 vs 512^3" + ("" if quick else " vs 1024^3"),
            "ours_s": results[512]["seconds"], "reference": "256^3 output", "reference_s": base["seconds"],
            "ratio": None, "repeats": 1,
            "note": f"peak RSS 512^3/256^3 = {results[512]['peak_mib'] / base['peak_mib']:.2f}; {figures}"}


def bench_against_simulation(quick: bool) -> dict:
    from nbgan_app.config import load_config
    from nbgan_app.sampling.chain import LevelPlan, RunInfo, dataset_specs, run_chain
    from nbgan_app.sampling.writer import SampleFile
    from nbgan_app.simulate import simulate_box

    grid = 64 if quick else 256
    gens = [_demo_generator(s)[0] for s in ("uni", "2", "1")]
    config = load_config(ROOT / "configs" / "demo.toml")
    run, p = RunInfo(Path("bench"), "1", None), config.pyramid.patch
    plans = [LevelPlan(3, grid // 4, p, None, None, run, "levels/3"),
             LevelPlan(2, grid // 2, p, 2, None, run, "levels/2"), LevelPlan(1, grid, p, 2, None, run, "data")]
    with tempfile.TemporaryDirectory() as tmp:
        with SampleFile(Path(tmp) / "warm.h5", dataset_specs(plans[:1]), 1, {}) as out:  # warm-up
            run_chain(plans[:1], gens[:1], out, 1)
        started = time.perf_counter()
        with SampleFile(Path(tmp) / "out.h5", dataset_specs(plans), 1, {}) as out:
            run_chain(plans, gens, out, 1)
        ours = time.perf_counter() - started
    sim = dataclasses.replace(config.data.simulation, particles=grid, mesh=grid, grid=grid, steps=20)
    simulate_box(sim, 0)  # compile
    started = time.perf_counter()
    simulate_box(sim, 0)
    ref = time.perf_counter() - started
    return {"benchmark": f"sampling: one {grid}^3 cube, chain Mu->M2->M1 (demo architectures) vs PM simulation",
            "ours_s": ours, "reference": f"jaxpm PM simulation, {grid}^3 particles, 20 steps", "reference_s": ref,
            "ratio": ref / ours, "repeats": 1, "note": "sampling time includes HDF5 writing; simulation after compile"}


def run(quick: bool) -> list[dict]:
    return [bench_orders(quick), bench_memory(quick), bench_against_simulation(quick)]


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(json.dumps(row))
