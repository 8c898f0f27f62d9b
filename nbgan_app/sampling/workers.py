"""Sampling many cubes on many workers through Ray: `nbgan sample --workers N [--address ADDR]`.

Ray schedules; nbgan only cuts the work. The N cubes are split into
contiguous ranges (`shards.split`, one per worker), and each range is one
Ray task (`sample_range`) that samples its cubes into its own shard: a sample
file (`writer`), streamed and resumable wave by wave like any other. Every
latent is keyed by the cube's index in the whole sample (`noise`, through
`first_cube`), and the driver pins the checkpoint of every run for the
workers (even while a run trains on), so the merged shards (`shards.merge`)
are the file one process writes for the same runs and seed.

Where the cluster has GPUs each task takes one (`num_gpus=1`; Ray sets its
CUDA_VISIBLE_DEVICES), else one CPU. A task whose worker is lost (its
process or node dies, the OOM killer) is run again by Ray, up to
`MAX_RETRIES` times; the new attempt resumes the shard from the last wave the
lost worker flushed, and no other range is touched: no cube is made twice.
If a range still fails, or the driver is stopped, the shards stay beside the
output, and `--resume` finishes them (with any number of workers: the
ranges are the plan's, `shards.PLAN`).

Progress: each task sends its work and its waves through a Ray queue; the
driver sums them (`Tally`) into the reporter one process uses
(`progress.ProgressLine`). `import ray` happens here only, and only when
workers are asked for; without the `cluster` extra, `--workers` says what to
install.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nbgan_app.errors import InputError
from nbgan_app.outputs import ensure_writable_dir
from nbgan_app.sampling import shards
from nbgan_app.sampling.api import Chain, SampleResult, Settings, _write, load_chain, work_of
from nbgan_app.sampling.chain import dataset_specs
from nbgan_app.sampling.writer import SampleFile, check_attrs

INSTALL = "pip install 'nbgan[cluster]'"
MAX_RETRIES = 3  # attempts after the first, for a task whose worker is lost (Ray's own retry)
LOCAL_OBJECT_STORE = 128 * 2**20  # bytes: tasks pass jobs, results and progress, never cubes
POLL = 0.5  # seconds between progress updates while the tasks run


def require_ray():
    """The `ray` module; InputError saying which extra to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--workers needs Ray, which is not installed: {INSTALL}") from None
    return ray


def check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers: expected a whole number >= 1. Received: {workers!r}")
    return workers


@dataclass(frozen=True)
class Job:
    """One task: cubes first .. first + count - 1 of the sample, into the shard file `shard` (absolute)."""

    runs: tuple[str, ...]
    side: int
    settings: Settings
    first: int
    count: int
    shard: str

    @property
    def attrs(self) -> dict:
        """The shard's attributes: the sample's, with its own cube count and first cube."""
        return {**self.settings.attrs, "n_cubes": self.count, "first_cube": self.first}


def _readable(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r"):
            return True
    except OSError:
        return False


def sample_range(job: Job, queue=None) -> SampleResult:
    """Sample the job's cubes into its shard, or finish the shard an earlier attempt left (runs in a worker)."""
    chain = load_chain(list(job.runs), job.side)
    shard = Path(job.shard)
    resume = shard.exists()
    if resume and not _readable(shard):
        # a worker killed in the middle of an HDF5 write can leave a file that no longer opens: redo the range
        shard.unlink()
        resume = False
    progress = _QueueProgress(queue, job.first) if queue is not None else None
    return _write(chain, job.count, shard, job.settings, first_cube=job.first, attrs=job.attrs, resume=resume,
                  overwrite=False, progress=progress)


class _QueueProgress:
    """A task's progress, sent to the driver: `begin(work)` once, then (wave, waves, level) per wave."""

    def __init__(self, queue, key: int):
        self.queue, self.key = queue, key

    def begin(self, work) -> None:
        self.queue.put((self.key, "begin", work))

    def __call__(self, wave: int, waves: int, level: int) -> None:
        self.queue.put((self.key, "wave", (wave, waves, level)))


class Tally:
    """The progress of all ranges as one, for the reporter of a single run.

    Units are (cube, patch) pairs, as in `api.work_of`. Each range reports
    `begin(work)` (what its shard holds and what it makes) and then its waves;
    the reporter gets the share of all units done, the units made so far (the
    ETA's rate) and, for its line, the place (wave, waves, level) of the least
    advanced range. A `progress.ProgressLine` is told all of it (`report`); a
    plain callable `(wave, waves, level)` is called when that place moves.
    """

    def __init__(self, progress, per_cube: list[tuple[int, list]], ranges: list[tuple[int, int]]):
        self.progress = progress
        self.rank = {level: k for k, (level, _) in enumerate(per_cube)}
        units = sum(todo for _, per_wave in per_cube for _, todo in per_wave)
        self.total_of = {first: (stop - first) * units for first, stop in ranges}
        last_level, last_waves = per_cube[-1][0], len(per_cube[-1][1])
        self.end = (len(per_cube) - 1, last_waves, last_waves, last_level)
        self.tables: dict[int, dict] = {}
        self.before: dict[int, int] = {}  # units a shard held when its task began
        self.at: dict[int, tuple] = {}  # first cube -> (units done, units made, place or None)
        self.place = None

    def begin(self, key: int, work) -> None:
        if not self.tables and hasattr(self.progress, "begin"):
            self.progress.begin([])  # the clock starts once a worker has its models and its shard: the ETA's rate
        done = made = 0
        table = {}
        for level, per_wave in work:
            for wave, (before, todo) in enumerate(per_wave, 1):
                done, made = done + before + todo, made + todo
                table[(level, wave)] = (done, made)
        self.tables[key] = table
        self.before[key] = done - made
        self.at[key] = (0, 0, None)  # what the shard holds counts as the range passes it, as in one process

    def wave(self, key: int, wave: int, waves: int, level: int) -> None:
        done, made = self.tables[key][(level, wave)]
        self.at[key] = (done, made, (self.rank[level], wave, waves, level))
        self._report()

    def finished(self, key: int, result: SampleResult) -> None:
        """A range's task returned; one whose shard was complete already reported nothing."""
        if key not in self.tables:
            self.before[key] = self.total_of[key]
            self.at[key] = (self.total_of[key], 0, None)
            self._report()

    def _report(self) -> None:
        total = sum(self.total_of.values())
        done = sum(at[0] for at in self.at.values())
        made = sum(at[1] for at in self.at.values())
        to_make = total - sum(self.before.values())
        places = [at[2] for at in self.at.values() if at[2] is not None]
        if done == total:
            place = self.end
        elif places:
            place = min(places)
        else:
            return  # no range has made a wave yet: no place to show
        _, wave, waves, level = place
        report = getattr(self.progress, "report", None)
        if report is not None:
            report(wave, waves, level, done=done, made=made, total=total, to_make=to_make)
        elif place != self.place:
            self.progress(wave, waves, level)
        self.place = place


def _drain(queue, tally: Tally | None) -> None:
    if queue is None:
        return
    count = queue.qsize()
    for key, kind, value in queue.get_nowait_batch(count) if count else []:
        if kind == "begin":
            tally.begin(key, value)
        else:
            tally.wave(key, *value)


@contextlib.contextmanager
def _connected(ray, workers: int, address: str | None):
    """Ray, connected: to the caller's own cluster, to `address` (else RAY_ADDRESS), or to a local one.

    A local cluster of `workers` CPUs (and the machine's GPUs) is started for
    the call and shut down after it; a cluster the call connected to is only
    disconnected from; one the caller had connected to is left as it was.
    """
    if ray.is_initialized():
        yield
        return
    flag = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    # the workers' output stays in Ray's logs: failures come back as exceptions, progress through the queue
    common = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        try:
            ray.init(address=address, **common)
        except Exception as exc:  # noqa: BLE001 - whatever Ray says of an address it cannot use, said in one line
            # clusters started by `ray start` check a token, which a driver sends only when told to
            auth = ("" if os.environ.get("RAY_AUTH_MODE") else
                    "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its ~/.ray/auth_token")
            raise InputError(f"{flag} {address}: cannot connect to a Ray cluster there "
                             f"({_first_line(exc)}){auth}") from None
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a cluster started for one command reports nothing
        ray.init(address="local", num_cpus=workers, include_dashboard=False,
                 object_store_memory=LOCAL_OBJECT_STORE, **common)
    try:
        yield
    finally:
        ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _failure(ray, exc: Exception, job: Job) -> Exception:
    """What a failed task raises in the driver: its InputError as it was, a lost worker as one line."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        return InputError(str(cause)) if isinstance(cause, InputError) else exc  # anything else is a bug
    if isinstance(exc, ray.exceptions.RayError):  # the worker (or its node) was lost more often than retried
        return InputError(f"cubes {job.first} to {job.first + job.count - 1}: the worker was lost "
                          f"{MAX_RETRIES + 1} times ({_first_line(exc)}); the finished cubes are kept, "
                          "rerun with --resume to make the rest")
    return exc


def _call(task, job: Job, queue) -> SampleResult:
    """The Ray task: `task` (`sample_range`, or a test's wrapper of it) travels as an argument."""
    return task(job, queue)


def _run(ray, jobs: list[Job], task, tally: Tally | None) -> list[SampleResult]:
    """Run one task per job, with the progress in `tally`; all their results, or the first failure once all ended.

    Ranges that fail do not stop the others: what they make is kept for a
    `--resume`. On Ctrl-C the tasks are cancelled (each closes its shard
    cleanly) before the interrupt goes on.
    """
    import keras

    gpus = ray.cluster_resources().get("GPU", 0)
    resources = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 1}
    # the backend is part of what makes the cubes: the workers use the driver's
    remote = ray.remote(_call).options(max_retries=MAX_RETRIES, **resources,
                                       runtime_env={"env_vars": {"KERAS_BACKEND": keras.backend.backend()}})
    queue = None
    if tally is not None:
        from ray.util.queue import Queue

        queue = Queue(actor_options={"num_cpus": 0})
    pending = {remote.remote(task, job, queue): job for job in jobs}
    results: dict[int, SampleResult] = {}
    failure = None
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL)
            _drain(queue, tally)  # a task's waves all reached the queue before it returned
            for ref in ready:
                job = pending.pop(ref)
                try:
                    results[job.first] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - kept, raised once every range has ended
                    failure = failure or _failure(ray, exc, job)
                    continue
                if tally is not None:
                    tally.finished(job.first, results[job.first])
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        ray.wait(list(pending), num_returns=len(pending), timeout=30)
        raise
    finally:
        if queue is not None:
            queue.shutdown()
    if failure is not None:
        raise failure
    return [results[job.first] for job in jobs]


def _resume_ranges(out: Path, parts: Path, settings: Settings) -> list[tuple[int, int]] | None:
    """The ranges of the interrupted run to finish; None when `out` is already the complete result."""
    if out.is_dir():
        raise InputError(f"--resume: output {out} is a directory, not a sample file")
    if parts.is_dir():
        plan = shards.read_plan(parts)
        check_attrs(parts, plan["attrs"], settings.attrs, settings.checked, settings.labels)
        return plan["ranges"]
    if not out.exists():
        raise InputError(f"--resume: output {out} does not exist (nor {parts.name}, the shards of a run on "
                         "workers)")
    import h5py

    try:
        with h5py.File(out, "r") as h5:
            check_attrs(out, h5.attrs, settings.attrs, settings.checked, settings.labels)
            complete = bool(h5.attrs.get("complete", False))
    except OSError:
        raise InputError(f"--resume: {out} is not a readable HDF5 file") from None
    if not complete:
        raise InputError(f"--resume: {out} was left by a run without --workers; resume it without --workers")
    return None


def _check_new(out: Path, parts: Path, specs, n: int, overwrite: bool) -> None:
    """Everything a new run on workers checks before it starts a cluster or writes anything."""
    if out.is_dir():
        raise InputError(f"output {out} is a directory; expected the name of a file to write")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(f"output {out} already exists (pass --overwrite to replace it, "
                         "or --resume to finish an interrupted run)")
    if parts.exists() and not overwrite:
        raise InputError(f"{parts} holds the shards of an unfinished run on workers: pass --resume to finish "
                         "it, or --overwrite to start anew")
    if not out.parent.is_dir():
        raise InputError(f"output {out}: directory {out.parent} does not exist "
                         "(create it first, or check the path for a typo)")
    ensure_writable_dir(out.parent)
    need, free = 2 * SampleFile(out, specs, n, {}).nbytes(), shutil.disk_usage(out.parent).free
    if need > free:  # the shards and the merged file, side by side until the merge ends
        from nbgan_app.cubes import format_bytes

        raise InputError(f"output {out}: {n} cubes on workers need about {format_bytes(need)} (the shards, then "
                         f"the merged file), more than the {format_bytes(free)} free in {out.parent} "
                         "(lower --n or --size)")


def sample_on_workers(chain: Chain, n: int, out, settings: Settings, *, workers: int, address: str | None = None,
                      resume: bool = False, overwrite: bool = False, progress=None,
                      task=sample_range) -> SampleResult:
    """Sample `n` cubes of `chain` into the sample file `out` on `workers` Ray tasks (see the module doc).

    `settings` come from `api.settings_of` (order, batch, pinned checkpoints,
    attributes); `address`: a Ray cluster (default RAY_ADDRESS, else a local
    one of `workers` CPUs); `resume`: finish the shards an interrupted run
    left; `progress`: as for `sample_chain`. `task(job, queue)` samples one
    range in a worker (`sample_range`; a test may wrap it).
    """
    ray = require_ray()
    check_workers(workers)
    out = Path(out)
    parts = shards.parts_dir(out).absolute()
    specs = dataset_specs(chain.plans)
    started = time.time()
    if resume:
        ranges = _resume_ranges(out, parts, settings)
        if ranges is None:
            return SampleResult(out, n, chain.side, settings.order, 0, 0.0, already_complete=True)
    else:
        _check_new(out, parts, specs, n, overwrite)
        ranges = shards.split(n, workers)
    runs = tuple(str(run.path.resolve()) for run in chain.runs)
    jobs = [Job(runs, chain.side, settings, first, stop - first, str(shards.shard_path(parts, first, stop)))
            for first, stop in ranges]
    tally = Tally(progress, work_of(chain.plans, None, 1, settings.order), ranges) if progress else None
    with _connected(ray, workers, address):
        if not resume:
            if parts.exists():  # --overwrite: the shards of an older, unfinished run
                shutil.rmtree(parts)
            shards.write_plan(parts, n, ranges, settings.attrs)
        results = _run(ray, jobs, task, tally)
    # a resumed run's output may still be the file an earlier --overwrite meant to replace
    shards.merge(parts, ranges, out, specs, n, settings.attrs, settings.box,
                 overwrite=overwrite or (resume and out.exists()))
    return SampleResult(out, n, chain.side, settings.order, sum(r.calls for r in results), time.time() - started,
                        workers=len(jobs))
