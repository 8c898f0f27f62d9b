"""Benchmarks of particle binning (`nbgan ingest`).

- throughput: `binning.bin_positions` against `numpy.histogramdd(bins=G,
  range=[(0, L)] * 3)` on the same uniformly random float32 particles (their
  counts are checked equal), G = 64, 2e6 particles (quick) or 1e7 and 3e7;
  medians of several repeats, both in the same process, interleaved.
- peak memory (not in quick mode): `ingest` of 1e8 float32 particles from an
  .npy file (1.2 GB) into a 256^3 cube, in a subprocess; the figure is its
  peak resident set (VmHWM, Linux) minus its resident set after imports, so
  it includes the int64 accumulator but not Python and the libraries. The
  output cube itself is 64 MB (float32); the target is at most 1 GB beyond it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOX = 128.0
GRID = 64
MEMORY_PARTICLES = 100_000_000
MEMORY_GRID = 256

# Peak from /proc's VmHWM, not getrusage: ru_maxrss carries over from the parent through
# fork and exec, and the parent has just written the 1.2 GB file through a memory map.
_CHILD = """
import json, sys, time
from nbgan_app.ingest import ingest

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

base = status("VmRSS")
start = time.perf_counter()
ingest([sys.argv[1]], int(sys.argv[2]), sys.argv[3], box_size=float(sys.argv[4]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": (status("VmHWM") - base) / 1024}))
"""


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(n_particles: int, repeats: int) -> dict:
    """Median seconds of ours and of histogramdd on the same particles."""
    from nbgan_app.binning import bin_positions

    rng = np.random.default_rng(0)
    positions = (rng.random((n_particles, 3), dtype=np.float32) * np.float32(BOX))
    positions[positions >= BOX] = 0  # float32 rounding can reach BOX: keep both in [0, L)
    ours, reference = [], []
    for _ in range(repeats):
        ours.append(_timed(lambda: bin_positions(positions, GRID, BOX)))
        reference.append(_timed(lambda: np.histogramdd(positions, bins=GRID, range=[(0, BOX)] * 3)))
    same = np.array_equal(bin_positions(positions, GRID, BOX),
                          np.histogramdd(positions, bins=GRID, range=[(0, BOX)] * 3)[0])
    ours_s, reference_s = statistics.median(ours), statistics.median(reference)
    return {"benchmark": f"binning {n_particles:.0e} particles to {GRID}^3", "ours_s": ours_s,
            "reference": "numpy.histogramdd", "reference_s": reference_s, "ratio": reference_s / ours_s,
            "repeats": repeats,
            "note": f"{n_particles / ours_s / 1e6:.0f} M particles/s; counts equal: {same}"}


def _write_npy(path: Path, n_particles: int, chunk: int = 10_000_000) -> None:
    """Uniform float32 positions in [0, BOX), written in chunks (bounded memory here too)."""
    rng = np.random.default_rng(1)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_particles, 3))
    for start in range(0, n_particles, chunk):
        block = rng.random((min(chunk, n_particles - start), 3), dtype=np.float32) * np.float32(BOX)
        block[block >= BOX] = 0
        array[start:start + len(block)] = block
    array.flush()
    del array


def ingest_memory(n_particles: int = MEMORY_PARTICLES, grid: int = MEMORY_GRID) -> dict:
    """Peak memory and time of `ingest` of one .npy file of n_particles, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "particles.npy"
        _write_npy(source, n_particles)
        done = subprocess.run([sys.executable, "-c", _CHILD, str(source), str(grid), str(Path(tmp) / "out"),
                               str(BOX)], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    cube_mb = grid**3 * 4 / 2**20
    return {"benchmark": f"ingest {n_particles:.0e} particles (.npy) to {grid}^3", "ours_s": figures["seconds"],
            "reference": "", "reference_s": None, "ratio": None, "repeats": 1,
            "note": f"peak memory {figures['peak_mb']:.0f} MB beyond imports (target <= 1024 MB beyond "
                    f"the {cube_mb:.0f} MB cube); {n_particles / figures['seconds'] / 1e6:.0f} M particles/s "
                    "from disk"}


def run(quick: bool) -> list[dict]:
    if quick:
        return [throughput(2_000_000, repeats=3)]
    return [throughput(10_000_000, repeats=5), throughput(30_000_000, repeats=3), ingest_memory()]
