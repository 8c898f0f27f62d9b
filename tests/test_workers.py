"""`nbgan sample --workers N`: cubes shared out among Ray workers, on a 2-worker local cluster on CPU.

The runs are conftest's tiny trained runs (levels 4/8/16, patch 4). The file that workers write must be the
file one process writes for the same runs and seed, bit for bit; a lost worker's cubes are made again and no
patch twice. One test lets `nbgan sample` start and stop its own local cluster; the others share one cluster
(`cluster`, 2 CPUs, a small object store) so that Ray starts once for them.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from nbgan_app.cli import main

ARGS = ["--n", "3", "--seed", "7", "--max-batch", "5"]


def chain_of(tiny_runs):
    return ",".join(str(tiny_runs[s]) for s in ("3", "2", "1"))


def contents(path):
    """Every dataset of a sample file (values, chunks, dtype, attributes) and the file's attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj[()], obj.chunks, obj.dtype, dict(obj.attrs))
        f.visititems(visit)
        out["attrs"] = {k: v for k, v in f.attrs.items()}
    return out


def assert_same_file(path, reference):
    got, want = contents(path), contents(reference)
    assert sorted(got) == sorted(want)
    assert {"data", "levels/2", "levels/3", "progress/frontier_data"} <= set(want)
    attrs = want.pop("attrs")
    assert got.pop("attrs").items() == attrs.items()
    for name, (values, chunks, dtype, dataset_attrs) in want.items():
        np.testing.assert_array_equal(got[name][0], values, err_msg=name)  # bit for bit
        assert got[name][1:] == (chunks, dtype, dataset_attrs), name


@pytest.fixture(scope="module")
def single(tiny_runs, tmp_path_factory):
    """The file one process writes: the reference for every run on workers."""
    path = tmp_path_factory.mktemp("single") / "one.h5"
    assert main(["sample", "--chain", chain_of(tiny_runs), *ARGS, "--quiet", "--out", str(path)]) == 0
    return path


def test_workers_write_the_single_process_file_on_a_local_cluster(tiny_runs, single, tmp_path, capsys):
    """`nbgan sample --workers 2` starts a local cluster, shares out 3 cubes (2 + 1), merges, shuts Ray down."""
    import ray

    from tui.processes import WAVE_LINE

    assert not ray.is_initialized()  # the command starts its own cluster here
    out = tmp_path / "two.h5"
    assert main(["sample", "--chain", chain_of(tiny_runs), *ARGS, "--workers", "2", "--out", str(out)]) == 0
    assert not ray.is_initialized()  # ... and shuts it down
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("2 workers)")
    assert_same_file(out, single)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.h5"]  # the shards are gone once merged
    # the progress of both workers as one line, as one process reports it (and as the dashboard reads it)
    lines = captured.err.strip().splitlines()
    assert lines and all(WAVE_LINE.match(line) for line in lines), lines
    shares = [int(re.search(r"  (\d+)%", line).group(1)) for line in lines]
    assert shares == sorted(shares) and len(lines) <= 25
    assert lines[-1] == "wave 10/10 level 1  100%  ETA 0:00"


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster of 2 CPUs for the rest of the module (`nbgan sample` uses a cluster it finds)."""
    import ray

    # "local": a new cluster, even where `ray start` left the address of another one to find
    ray.init(address="local", num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    # the tasks below are this module's functions, which the workers cannot import: send them whole
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def logged_task(job, queue, *, log, die_after=None, how="exit", marker=None):
    """`workers.sample_range`, logging every patch it writes as "dataset cube index" (cube in the whole sample).

    With `die_after`, the task of the last range dies at its generator call die_after + 1: its process
    exits (a lost worker, which Ray runs again) or raises (a failed range); with `marker`, only once.
    """
    from nbgan_app.sampling import runs, workers, writer

    real_write, real_wrap = writer.LevelTarget.write, runs.keras_generator
    calls = {"n": 0}  # over the task's three generators

    def write(self, cube, index, values):
        with open(log, "a") as f:
            f.write(f"{self.spec.name} {job.first + cube} {index}\n")
        real_write(self, cube, index, values)

    def dying(model):
        generate = real_wrap(model)

        def call(x):
            calls["n"] += 1
            if calls["n"] > die_after:
                if how == "exit":
                    os._exit(1)
                raise RuntimeError("range lost")
            return generate(x)
        return call

    writer.LevelTarget.write = write
    if die_after is not None and job.first > 0 and not (marker and Path(marker).exists()):
        if marker:
            Path(marker).touch()
        runs.keras_generator = dying  # the generators are wrapped when loaded, per task
    try:
        return workers.sample_range(job, queue)
    finally:  # a worker process runs further tasks
        writer.LevelTarget.write, runs.keras_generator = real_write, real_wrap


def sample_with(tiny_runs, out, task, resume=False):
    from nbgan_app.sampling import load_chain
    from nbgan_app.sampling.api import settings_of
    from nbgan_app.sampling.workers import sample_on_workers

    chain = load_chain([tiny_runs[s] for s in ("3", "2", "1")])
    settings = settings_of(chain, 3, {"command": "sample"}, seed=7, order=None, max_batch=5)
    return sample_on_workers(chain, 3, out, settings, workers=2, resume=resume, task=task)


def written_once(log):
    """Every patch of the 3 cubes was written, and none twice: M3's cube, M2's 2^3 and M1's 4^3 patches."""
    counts = collections.Counter(Path(log).read_text().splitlines())
    expected = {f"{name} {cube} {index}" for cube in range(3)
                for name, n in (("levels/3", 1), ("levels/2", 2), ("data", 4))
                for index in np.ndindex(n, n, n)}
    assert set(counts) == expected
    assert max(counts.values()) == 1


# Cube 2's range (1 cube, batches of 5) makes 1 call at M3, 4 at M2 (one per wave), then 1 per wave of
# M1's first two waves (1 and 3 patches): dying at call 8 loses the worker on a wave boundary.
DIE_AFTER = 7


def test_a_lost_worker_is_replaced_and_no_patch_is_made_twice(tiny_runs, single, cluster, tmp_path):
    log, marker = tmp_path / "writes.log", tmp_path / "died"
    task = functools.partial(logged_task, log=log, die_after=DIE_AFTER, how="exit", marker=marker)
    result = sample_with(tiny_runs, tmp_path / "two.h5", task)
    assert marker.exists()  # the worker of cubes 2..2 did die; Ray ran its task again, which resumed its shard
    assert_same_file(tmp_path / "two.h5", single)
    written_once(log)
    assert result.workers == 2 and not (tmp_path / "two.h5.parts").exists()


def test_resume_finishes_the_shards_of_a_failed_run(tiny_runs, single, cluster, tmp_path, capsys):
    out, log = tmp_path / "two.h5", tmp_path / "writes.log"
    chain = chain_of(tiny_runs)
    failing = functools.partial(logged_task, log=log, die_after=DIE_AFTER, how="raise")
    with pytest.raises(RuntimeError, match="range lost"):  # raised once the other range has ended
        sample_with(tiny_runs, out, failing)
    parts = tmp_path / "two.h5.parts"
    assert not out.exists() and sorted(p.name for p in parts.iterdir()) == [
        "cubes-000000-000001.h5", "cubes-000002-000002.h5", "plan.json"]
    with h5py.File(parts / "cubes-000000-000001.h5", "r") as f:
        assert bool(f.attrs["complete"]) and f.attrs["first_cube"] == 0
    with h5py.File(parts / "cubes-000002-000002.h5", "r") as f:
        assert not bool(f.attrs["complete"]) and f.attrs["first_cube"] == 2 and f.attrs["n_cubes"] == 1
    before = {p.name: p.read_bytes() for p in parts.iterdir()}

    # what a user may get wrong about the shards, refused in one line before any work
    base = ["sample", "--chain", chain, "--out", str(out), "--quiet"]
    for args, message in [
        (ARGS + ["--workers", "2"], f"{parts} holds the shards of an unfinished run on workers: pass --resume to "
                                    "finish it, or --overwrite to start anew"),
        (ARGS + ["--resume"], f"--resume: {parts} holds the shards of a run on workers; resume it with "
                              "--workers N"),
        (["--n", "3", "--seed", "8", "--max-batch", "5", "--workers", "2", "--resume"],
         f"--resume: {parts} was written with --seed 7, not 8"),
        (["--n", "4", "--seed", "7", "--workers", "2", "--resume"], f"--resume: {parts} was written with --n 3, "
                                                                    "not 4"),
    ]:
        assert main(base + args) == 2
        assert capsys.readouterr().err == f"nbgan sample: error: {message}\n"
    assert {p.name: p.read_bytes() for p in parts.iterdir()} == before

    # --resume (here with one worker: the ranges are the plan's) makes only what is missing
    assert main(base + ARGS + ["--workers", "1", "--resume"]) == 0
    assert_same_file(out, single)
    assert not parts.exists()
    os.remove(out)
    os.remove(log)

    # the same again through the logged task: across both runs every patch written exactly once
    with pytest.raises(RuntimeError, match="range lost"):
        sample_with(tiny_runs, out, failing)
    sample_with(tiny_runs, out, functools.partial(logged_task, log=log), resume=True)
    assert_same_file(out, single)
    written_once(log)
    assert main(base + ARGS + ["--workers", "2", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_without_ray_workers_name_the_extra(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    out = tmp_path / "x.h5"
    assert main(["sample", "--chain", chain_of(tiny_runs), *ARGS, "--workers", "2", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("nbgan sample: error: --workers needs Ray, which is not installed: "
                                       "pip install 'nbgan[cluster]'\n")
    assert list(tmp_path.iterdir()) == []
    for args, message in [(["--workers", "0"], "--workers: expected a whole number >= 1. Received: '0'"),
                          (["--address", "ray://head:10001"], "--address: the cluster runs workers; give their "
                                                              "number with --workers N")]:
        assert main(["sample", "--chain", chain_of(tiny_runs), *ARGS, *args, "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"nbgan sample: error: {message}\n"


def test_ray_is_imported_only_for_workers():
    code = ("import sys, nbgan_app.cli, nbgan_app.sampling.workers, nbgan_app.commands.sample; "
            "nbgan_app.cli.build_parser(); print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_tally_sums_the_ranges_for_one_progress_line():
    """Two ranges (2 cubes and 1) at their own pace: one line, the share of all patches, the laggard's place."""
    import io

    from nbgan_app.sampling.progress import ProgressLine
    from nbgan_app.sampling.workers import Tally
    from tui.processes import WAVE_LINE

    per_cube = [(3, [(0, 1)]), (1, [(0, 1), (0, 3), (0, 1)])]  # M3, then a level of 5 patches in 3 waves
    now = {"t": 0.0}
    stream = io.StringIO()
    line = ProgressLine(stream=stream, clock=lambda: now["t"], step=1)
    tally = Tally(line, per_cube, [(0, 2), (2, 3)])
    tally.begin(0, [(level, [(0, 2 * todo) for _, todo in waves]) for level, waves in per_cube])
    # the second range resumes a shard that holds M3 and the level's first wave already
    tally.begin(2, [(3, [(1, 0)]), (1, [(1, 0), (0, 3), (0, 1)])])
    events = [(0, 1, 1, 3), (2, 1, 1, 3), (0, 1, 3, 1), (2, 1, 3, 1), (0, 2, 3, 1), (0, 3, 3, 1), (2, 2, 3, 1),
              (2, 3, 3, 1)]
    for k, (key, wave, waves, level) in enumerate(events, 1):
        now["t"] = float(k)
        tally.wave(key, wave, waves, level)
    lines = stream.getvalue().splitlines()
    assert all(WAVE_LINE.match(text) for text in lines)
    # 18 patches (12 + 6), 16 to make (the resumed shard holds 2): the share counts each range's waves passed,
    # the ETA the rest at the rate so far; the place is the laggard's, and the last line is the end
    assert lines == ["wave 1/1 level 3  11%  ETA 0:07",  # range 0's M3: 2 of 18, 2 made in 1 s, 14 to go
                     "wave 1/1 level 3  16%  ETA 0:14",  # range 2's resumed M3: nothing made
                     "wave 1/1 level 3  27%  ETA 0:09",  # range 0 ahead (wave 1 of level 1), range 2 behind
                     "wave 1/3 level 1  33%  ETA 0:12",
                     "wave 1/3 level 1  66%  ETA 0:03",
                     "wave 1/3 level 1  77%  ETA 0:02",  # range 0 done
                     "wave 2/3 level 1  94%  ETA 0:00",
                     "wave 3/3 level 1  100%  ETA 0:00"]
