"""The devices a run can use: reading them, choosing one, and handing the choice to a process.

A device choice is a string: `"gpu:N"` (NVML's index N, the order of
`nvidia-smi`) or `"cpu"`. A process gets its choice through its environment
(`device_env`), set before its Keras backend starts:

- `gpu:N`: `CUDA_VISIBLE_DEVICES=N` with `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so CUDA
  numbers the GPUs as NVML does (CUDA's own default order puts the fastest
  first). The backends are also told to take GPU memory as they need it
  rather than all of it at start-up (`TF_FORCE_GPU_ALLOW_GROWTH`,
  `XLA_PYTHON_CLIENT_PREALLOCATE`), so several runs can share a GPU and the
  free memory NVML reports means something to the next one.
- `cpu`: an empty `CUDA_VISIBLE_DEVICES` (no GPU is visible) and `JAX_PLATFORMS=cpu`.

GPUs are read through NVML (the `pynvml` module of the `nvidia-ml-py` package):
`NvmlSource` initialises NVML once, on the first read, and where there is no
NVML library or no GPU it reports none, with the reason. The CPU is read with
`os` and `psutil`: cores, load average, memory. `DeviceMonitor.snapshot()`
gives both; reading costs a few NVML calls per GPU, cheap enough for a
dashboard refreshing every few seconds.

A run records its choice in its run directory (`DEVICE_FILE`, written
atomically): {"device": "gpu:1", "cuda_visible_devices": "1", "name":
"NVIDIA H200", "uuid": "GPU-...", "recorded": unix time}; `read_device` reads it back.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbgan_app import rundir
from nbgan_app.errors import InputError

DEVICE_FILE = rundir.DEVICE  # in the run directory, beside rundir.CONFIG and rundir.STATE
CPU = "cpu"
_CHOICE = re.compile(r"(?:gpu|cuda):(\d+)|cpu")
BACKEND_MODULES = ("tensorflow", "jax", "torch")


# --- what the devices are doing ----------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML sees it; memory in bytes, utilisation in percent (None where NVML has none)."""

    index: int
    name: str
    memory_used: int
    memory_total: int
    utilisation: int | None = None
    uuid: str = ""
    pids: tuple[int, ...] = ()  # processes with a compute context on it (host pids, as NVML reports them)

    @property
    def device(self) -> str:
        return f"gpu:{self.index}"

    @property
    def memory_free(self) -> int:
        return max(self.memory_total - self.memory_used, 0)


@dataclass(frozen=True)
class CpuInfo:
    """The CPUs this process may use, their load average (1, 5, 15 min) and the memory, in bytes."""

    cores: int
    load: tuple[float, float, float]
    memory_available: int
    memory_total: int


@dataclass(frozen=True)
class Snapshot:
    """The devices at one moment. `note` says why there is no GPU row (no NVML library, no GPU...)."""

    cpu: CpuInfo
    gpus: tuple[GpuInfo, ...] = ()
    note: str = ""
    time: float = field(default_factory=time.time)

    def gpu(self, device: str) -> GpuInfo | None:
        return next((g for g in self.gpus if g.device == device), None)

    def free_memory(self, device: str) -> int | None:
        """Bytes free on `device` ("gpu:N" or "cpu"), None for a GPU this snapshot does not have."""
        if device == CPU:
            return self.cpu.memory_available
        gpu = self.gpu(device)
        return gpu.memory_free if gpu else None

    def choices(self) -> list[str]:
        """Every device a run may be put on: the GPUs, then the CPU."""
        return [g.device for g in self.gpus] + [CPU]


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_cpu() -> CpuInfo:
    import psutil

    cores = usable_cores()
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    memory = psutil.virtual_memory()
    return CpuInfo(cores, tuple(float(x) for x in load), int(memory.available), int(memory.total))


class NvmlSource:
    """The GPUs through NVML. `nvml` is the `pynvml` module (the default) or a stand-in with its API.

    NVML is initialised once, at the first `gpus()`; if that fails (no library, no
    driver) the source says why in `note` and reports no GPU from then on,
    without trying again on every refresh. A GPU whose query fails (it fell off
    the bus, a MIG slice) is left out of that read.
    """

    def __init__(self, nvml=None):
        self._nvml = nvml
        self._ready: bool | None = None  # None: not tried yet
        self.note = ""

    def _start(self) -> bool:
        if self._ready is None:
            try:
                if self._nvml is None:
                    import pynvml

                    self._nvml = pynvml
                self._nvml.nvmlInit()
                self._ready = True
            except ImportError:
                self._ready, self.note = False, "no GPU: the nvidia-ml-py package is not installed"
            except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded...: no GPU here
                self._ready, self.note = False, f"no GPU: NVML unavailable ({exc})"
        return self._ready

    def gpus(self) -> tuple[GpuInfo, ...]:
        if not self._start():
            return ()
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            self.note = f"no GPU: NVML cannot count devices ({exc})"
            return ()
        found = []
        for index in range(count):
            try:
                found.append(self._read(nvml, index))
            except Exception:  # noqa: BLE001 - one unreadable GPU must not hide the others
                continue
        self.note = "" if found else "no GPU found by NVML"
        return tuple(found)

    @staticmethod
    def _read(nvml, index: int) -> GpuInfo:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilisation = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # not supported on some boards and MIG slices
            utilisation = None
        try:
            uuid = nvml.nvmlDeviceGetUUID(handle)
        except Exception:
            uuid = ""
        try:
            pids = tuple(int(p.pid) for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        except Exception:
            pids = ()
        return GpuInfo(index, _text(name), int(memory.used), int(memory.total), utilisation, _text(uuid), pids)

    def close(self) -> None:
        if self._ready:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
        self._ready = None


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class DeviceMonitor:
    """Snapshots of the GPUs (through `source`, an `NvmlSource` by default) and the CPU."""

    def __init__(self, source: NvmlSource | None = None):
        self.source = source if source is not None else NvmlSource()
        self.last: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        gpus = self.source.gpus()
        self.last = Snapshot(read_cpu(), gpus, getattr(self.source, "note", ""))
        return self.last

    def latest(self) -> Snapshot:
        """The last snapshot, reading one if there is none yet."""
        return self.last or self.snapshot()

    def close(self) -> None:
        self.source.close()


# x86 flags (Linux /proc/cpuinfo) of instructions that compute in bfloat16 natively
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_runs_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU computes in bfloat16 natively (`BF16_CPU_FLAGS`), from /proc/cpuinfo's text
    (read when not given); None where it lists no x86 flags (another OS or architecture)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") and ":" in line
             for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in BF16_CPU_FLAGS) if flags else None


def accelerator_visible() -> bool:
    """Whether the Keras backend in use sees a GPU (it loads the backend)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    import torch

    return torch.cuda.is_available()


# --- choosing -----------------------------------------------------------------------------------------


def least_loaded(snapshot: Snapshot, assigned: dict[str, int] | None = None) -> str:
    """The GPU to put the next run on: fewest runs `assigned` to it (device -> count; runs just started
    do not load a GPU yet), then the lowest utilisation, then the most free memory. "cpu" without a GPU."""
    assigned = assigned or {}
    if not snapshot.gpus:
        return CPU
    best = min(snapshot.gpus, key=lambda g: (assigned.get(g.device, 0), g.utilisation or 0, -g.memory_free,
                                              g.index))
    return best.device


def by_load(snapshot: Snapshot, assigned: dict[str, int] | None = None) -> list[str]:
    """The GPUs from least to most loaded (the order of `least_loaded`)."""
    assigned = dict(assigned or {})
    order = []
    rest = list(snapshot.gpus)
    while rest:
        pick = least_loaded(Snapshot(snapshot.cpu, tuple(rest)), assigned)
        order.append(pick)
        rest = [g for g in rest if g.device != pick]
    return order


def spread(count: int, chosen: str, snapshot: Snapshot, assigned: dict[str, int] | None = None) -> list[str]:
    """Devices for `count` runs started together (the chain's M3, M2, M1): one GPU each, `chosen`
    first and then the least loaded others, when `chosen` is a GPU and there are `count` GPUs;
    otherwise all on `chosen`."""
    chosen = parse_device(chosen)
    if chosen == CPU or len(snapshot.gpus) < count or snapshot.gpu(chosen) is None:
        return [chosen] * count
    others = [d for d in by_load(snapshot, assigned) if d != chosen]
    return [chosen] + others[: count - 1]


def parse_device(text: str, flag: str = "--device") -> str:
    """The canonical choice ("gpu:N" or "cpu") of a user's text; InputError names `flag` otherwise.

    "cuda:N" is taken for "gpu:N"; case and surrounding blanks are ignored.
    """
    value = str(text).strip().lower()
    match = _CHOICE.fullmatch(value)
    if match is None:
        raise InputError(f"{flag}: expected 'cpu' or 'gpu:N' (N = the GPU's index in nvidia-smi). "
                         f"Received: {text!r}")
    return CPU if value == CPU else f"gpu:{int(match.group(1))}"


def check_available(choice: str, snapshot: Snapshot, flag: str = "--device") -> str:
    """`choice` if this machine has it, else InputError naming the devices it has."""
    choice = parse_device(choice, flag)
    if choice != CPU and snapshot.gpu(choice) is None:
        have = ", ".join(snapshot.choices())
        why = f" ({snapshot.note})" if snapshot.note else ""
        raise InputError(f"{flag} {choice}: no such device on this machine; it has {have}{why}")
    return choice


def cuda_visible_devices(choice: str) -> str:
    """The CUDA_VISIBLE_DEVICES value of a choice: the GPU's index, or "" for the CPU."""
    choice = parse_device(choice)
    return "" if choice == CPU else choice.split(":", 1)[1]


def device_env(choice: str, base: dict | None = None) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) for a process that must use `choice`."""
    env = dict(os.environ if base is None else base)
    choice = parse_device(choice)
    env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices(choice)
    if choice == CPU:
        env["JAX_PLATFORMS"] = "cpu"
    else:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if env.get("JAX_PLATFORMS") == "cpu":
            del env["JAX_PLATFORMS"]
    return env


def loaded_backends() -> list[str]:
    """The backend modules this process has imported already (their CUDA set-up is done)."""
    return [m for m in BACKEND_MODULES if m in sys.modules]


def apply_device(choice: str) -> str:
    """Put this process on `choice` (what `nbgan train --device` and `nbgan sample --device` do).

    Must run before the Keras backend is imported, since CUDA reads its
    environment once; raises RuntimeError if a backend is already loaded.
    Returns the canonical choice.
    """
    choice = parse_device(choice)
    loaded = loaded_backends()
    if loaded:
        raise RuntimeError(f"apply_device({choice!r}) after {loaded[0]} was imported: the device must be "
                           "chosen before the backend starts")
    wanted = device_env(choice, {})
    for key, value in wanted.items():
        os.environ[key] = value
    if choice != CPU and os.environ.get("JAX_PLATFORMS") == "cpu":
        del os.environ["JAX_PLATFORMS"]
    return choice


def use_device(text: str, snapshot: Snapshot | None = None, flag: str = "--device") -> tuple[str, Snapshot]:
    """`--device` of `nbgan train` and `nbgan sample`: check `text` against this machine, then apply it.

    `snapshot` defaults to one read now (NVML, then shut down again). Returns
    (the canonical choice, the snapshot), for `record_device`. InputError for a
    choice this machine lacks, before anything changes. In a process whose
    backend is loaded already (the CLI called in-process, as tests do), "cpu"
    on a machine without GPUs is what the backend uses anyway; any other
    choice there is a RuntimeError (`apply_device`).
    """
    if snapshot is None:
        monitor = DeviceMonitor()
        try:
            snapshot = monitor.snapshot()
        finally:
            monitor.close()
    choice = check_available(text, snapshot, flag)
    if not (choice == CPU and not snapshot.gpus and loaded_backends()):
        apply_device(choice)
    return choice, snapshot


# --- recording ----------------------------------------------------------------------------------------


def record_device(run_dir: Path, choice: str, snapshot: Snapshot | None = None) -> dict:
    """Write the run's DEVICE_FILE (atomically); the GPU's name and UUID come from `snapshot` when given."""
    choice = parse_device(choice)
    payload = {"device": choice, "cuda_visible_devices": cuda_visible_devices(choice), "recorded": time.time()}
    gpu = snapshot.gpu(choice) if snapshot is not None else None
    if gpu is not None:
        payload.update(name=gpu.name, uuid=gpu.uuid)
    elif choice == CPU:
        payload["name"] = "CPU"
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    rundir.write_json_atomic(Path(run_dir) / DEVICE_FILE, payload)
    return payload


def read_device(run_dir: Path) -> str | None:
    """The device a run recorded, or None (no file, an unreadable one, or not a device)."""
    payload = rundir.read_json(Path(run_dir) / DEVICE_FILE)
    if not isinstance(payload, dict):
        return None
    try:
        return parse_device(payload.get("device", ""))
    except InputError:
        return None


# --- the memory guard ---------------------------------------------------------------------------------


def memory_warning(needed: int, choice: str, snapshot: Snapshot) -> str | None:
    """A one-line warning when `needed` bytes do not fit the free memory of `choice`, else None."""
    from nbgan_app.memory_estimate import format_bytes

    free = snapshot.free_memory(choice)
    if free is None or needed <= free:
        return None
    return (f"needs about {format_bytes(needed)} but {choice} has {format_bytes(free)} free: "
            "it may run out of memory")
