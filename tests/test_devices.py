"""Devices: NVML through a stand-in library, the real CPU path, choosing, the child environment, recording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbgan_app import devices
from nbgan_app.devices import CpuInfo, DeviceMonitor, GpuInfo, NvmlSource, Snapshot
from nbgan_app.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


class FakeNvml:
    """A stand-in for the `pynvml` module: the calls NvmlSource makes, over a list of GPUs.

    Each GPU is a dict: name, used, total (bytes), util (percent, or an exception to raise),
    pids, and `broken` (every query of it fails). `fail_init` makes nvmlInit raise.
    """

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[dict], fail_init: bool = False):
        self.gpus, self.fail_init = gpus, fail_init
        self.inits = self.shutdowns = 0

    def nvmlInit(self):
        self.inits += 1
        if self.fail_init:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        if self.gpus[index].get("broken"):
            raise self.NVMLError("GPU is lost")
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle):
        return handle["name"].encode()  # older pynvml returns bytes

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle['name']}"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return type("Memory", (), {"used": handle["used"], "total": handle["total"],
                                   "free": handle["total"] - handle["used"]})()

    def nvmlDeviceGetUtilizationRates(self, handle):
        if isinstance(handle["util"], Exception):
            raise handle["util"]
        return type("Utilization", (), {"gpu": handle["util"], "memory": 0})()

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [type("Process", (), {"pid": pid})() for pid in handle.get("pids", ())]


def gpu(name="NVIDIA H200", used=1, total=140, util=0, pids=(), **extra) -> dict:
    return {"name": name, "used": used * GIB, "total": total * GIB, "util": util, "pids": pids, **extra}


def snapshot(*gpus: GpuInfo) -> Snapshot:
    return Snapshot(CpuInfo(2, (0.5, 0.4, 0.3), 20 * GIB, 24 * GIB), tuple(gpus))


def info(index, used=1, util=0, total=140) -> GpuInfo:
    return GpuInfo(index, "GPU", used * GIB, total * GIB, util)


def test_nvml_source_reads_every_gpu_and_initialises_once():
    fake = FakeNvml([gpu(used=10, util=35, pids=(123,)), gpu(name="A100", util=FakeNvml.NVMLError("n/a")),
                     gpu(broken=True)])
    monitor = DeviceMonitor(NvmlSource(fake))
    for _ in range(3):
        shot = monitor.snapshot()
    assert fake.inits == 1
    assert [g.device for g in shot.gpus] == ["gpu:0", "gpu:1"]  # the lost GPU is left out, not the others
    first, second = shot.gpus
    assert (first.name, first.memory_used, first.memory_total, first.utilisation, first.pids) == \
        ("NVIDIA H200", 10 * GIB, 140 * GIB, 35, (123,))
    assert first.memory_free == 130 * GIB and first.uuid == "GPU-NVIDIA H200"
    assert second.name == "A100" and second.utilisation is None
    assert shot.free_memory("gpu:0") == 130 * GIB and shot.free_memory("gpu:7") is None
    assert shot.choices() == ["gpu:0", "gpu:1", "cpu"] and shot.note == ""
    monitor.close()
    assert fake.shutdowns == 1


def test_without_nvml_there_is_no_gpu_and_the_reason_is_kept():
    fake = FakeNvml([gpu()], fail_init=True)
    source = NvmlSource(fake)
    assert source.gpus() == () and source.gpus() == ()
    assert fake.inits == 1  # not retried on every refresh
    assert "NVML unavailable" in source.note and "Not Found" in source.note
    source.close()
    assert fake.shutdowns == 0


def test_the_real_cpu_path_reads_cores_load_and_memory():
    """This machine's real sources: pynvml (no NVML library on a CPU machine) and the CPU."""
    import psutil

    shot = DeviceMonitor().snapshot()
    assert shot.cpu.cores == len(os.sched_getaffinity(0))
    assert shot.cpu.load == pytest.approx(os.getloadavg(), abs=2.0)
    assert shot.cpu.memory_total == psutil.virtual_memory().total
    assert 0 < shot.cpu.memory_available <= shot.cpu.memory_total
    assert shot.free_memory("cpu") == shot.cpu.memory_available
    if shot.gpus:  # a GPU machine: NVML answered
        assert all(g.memory_total > 0 and g.name for g in shot.gpus)
    else:
        assert shot.note.startswith("no GPU")
        assert devices.least_loaded(shot) == "cpu"


def test_least_loaded_prefers_fewer_runs_then_idle_then_free_memory():
    assert devices.least_loaded(snapshot()) == "cpu"
    shot = snapshot(info(0, util=50), info(1, util=5), info(2, util=5, used=100))
    assert devices.least_loaded(shot) == "gpu:1"
    assert devices.least_loaded(shot, {"gpu:1": 1}) == "gpu:2"
    assert devices.by_load(shot) == ["gpu:1", "gpu:2", "gpu:0"]
    unknown = snapshot(GpuInfo(0, "GPU", 50 * GIB, 140 * GIB, None), info(1, used=1, util=0))
    assert devices.least_loaded(unknown) == "gpu:1"


def test_the_chain_spreads_over_enough_gpus_else_stays_on_the_chosen_device():
    three = snapshot(info(0, util=90), info(1, util=10), info(2, util=50))
    assert devices.spread(3, "gpu:2", three) == ["gpu:2", "gpu:1", "gpu:0"]
    assert devices.spread(3, "cpu", three) == ["cpu"] * 3
    two = snapshot(info(0), info(1))
    assert devices.spread(3, "gpu:1", two) == ["gpu:1"] * 3
    assert devices.spread(3, "cpu", snapshot()) == ["cpu"] * 3


@pytest.mark.parametrize("text, choice", [("cpu", "cpu"), (" GPU:1 ", "gpu:1"), ("cuda:0", "gpu:0"),
                                          ("gpu:01", "gpu:1")])
def test_parse_device(text, choice):
    assert devices.parse_device(text) == choice


@pytest.mark.parametrize("text", ["gpu", "gpu:-1", "1", "tpu:0", "gpu:1,2", ""])
def test_parse_device_refuses_in_one_line_naming_the_flag(text):
    with pytest.raises(InputError) as caught:
        devices.parse_device(text, "--device")
    message = str(caught.value)
    assert message.startswith("--device: expected 'cpu' or 'gpu:N'") and repr(text) in message
    assert "\n" not in message


def test_check_available_names_the_devices_this_machine_has():
    shot = snapshot(info(0))
    assert devices.check_available("gpu:0", shot) == "gpu:0"
    with pytest.raises(InputError, match=r"--device gpu:3: no such device on this machine; it has gpu:0, cpu"):
        devices.check_available("gpu:3", shot)


def test_device_env_sets_cuda_visible_devices_and_leaves_the_base_alone():
    base = {"PATH": "/bin", "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "0,1"}
    env = devices.device_env("gpu:1", base)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "JAX_PLATFORMS" not in env and env["PATH"] == "/bin"
    assert base["CUDA_VISIBLE_DEVICES"] == "0,1"  # a copy
    cpu = devices.device_env("cpu", {"PATH": "/bin"})
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["JAX_PLATFORMS"] == "cpu"


def test_a_child_started_with_the_device_env_sees_it():
    code = "import os, json; print(json.dumps({k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'JAX_PLATFORMS')}))"
    for choice, expected in (("gpu:2", {"CUDA_VISIBLE_DEVICES": "2", "JAX_PLATFORMS": None}),
                             ("cpu", {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"})):
        out = subprocess.run([sys.executable, "-c", code], env=devices.device_env(choice), capture_output=True,
                             text=True, check=True).stdout
        assert json.loads(out) == expected


def test_tensorflow_in_a_cpu_child_sees_no_gpu():
    code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    env = devices.device_env("cpu", dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0"


def test_apply_device_sets_this_process_before_the_backend_and_refuses_after():
    """In child processes, so this one's environment is left as it was."""
    code = ("import os, sys\nfrom nbgan_app.devices import apply_device\n"
            "print(apply_device(sys.argv[1]), repr(os.environ['CUDA_VISIBLE_DEVICES']))\n"
            "sys.modules['tensorflow'] = type(sys)('tensorflow')\n"
            "try:\n    apply_device('cpu')\nexcept RuntimeError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code, "gpu:3"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "gpu:3 '3'"
    assert out[1].startswith("refused: apply_device('cpu') after tensorflow was imported")


def test_record_and_read_the_device_of_a_run(tmp_path):
    run = tmp_path / "run"
    shot = snapshot(GpuInfo(1, "NVIDIA H200", 0, 140 * GIB, 0, "GPU-abc"))
    payload = devices.record_device(run, "GPU:1", shot)
    saved = json.loads((run / devices.DEVICE_FILE).read_text())
    assert saved == payload
    assert saved["device"] == "gpu:1" and saved["cuda_visible_devices"] == "1"
    assert saved["name"] == "NVIDIA H200" and saved["uuid"] == "GPU-abc"
    assert devices.read_device(run) == "gpu:1"
    assert sorted(p.name for p in run.iterdir()) == [devices.DEVICE_FILE]  # no temporary left behind
    devices.record_device(run, "cpu")
    assert devices.read_device(run) == "cpu"
    (run / devices.DEVICE_FILE).write_text('{"device": "tpu')
    assert devices.read_device(run) is None
    (run / devices.DEVICE_FILE).write_text('{"device": "tpu:0"}')
    assert devices.read_device(run) is None
    assert devices.read_device(tmp_path / "missing") is None


def test_memory_warning_when_the_estimate_does_not_fit():
    shot = snapshot(info(0, used=139, total=140))
    assert devices.memory_warning(512 * 1024**2, "gpu:0", shot) is None
    warning = devices.memory_warning(3 * GIB, "gpu:0", shot)
    assert warning == "needs about 3 GiB but gpu:0 has 1 GiB free: it may run out of memory"
    assert devices.memory_warning(30 * GIB, "cpu", shot) == \
        "needs about 30 GiB but cpu has 20 GiB free: it may run out of memory"
    assert devices.memory_warning(1, "gpu:5", shot) is None  # unknown device: nothing to compare


# --- --device on `nbgan train` and `nbgan sample` ----------------------------------------------------

_ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "JAX_PLATFORMS", "TF_FORCE_GPU_ALLOW_GROWTH",
             "XLA_PYTHON_CLIENT_PREALLOCATE")
# The CLI as its own process, printing the device environment it ended with.
_CLI_THEN_ENV = ("import json, os, sys\nfrom nbgan_app.cli import main\ncode = main(sys.argv[1:])\n"
                 f"print(json.dumps({{k: os.environ.get(k) for k in {_ENV_KEYS!r}}}))\nsys.exit(code)\n")


def _cli_process(*argv):
    env = {k: v for k, v in os.environ.items() if k not in _ENV_KEYS}
    done = subprocess.run([sys.executable, "-c", _CLI_THEN_ENV, *map(str, argv)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_and_sample_with_device_cpu_run_on_the_cpu_and_train_records_it(tiny_toml, tmp_path):
    """The real CPU path, in fresh processes: the choice is applied before the backend starts."""
    run = tmp_path / "run"
    env = _cli_process("train", "--config", tiny_toml, "--scale", "3", "--run-dir", run, "--steps", "2",
                       "--quiet", "--device", "cpu")
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["JAX_PLATFORMS"] == "cpu"
    saved = json.loads((run / devices.DEVICE_FILE).read_text())
    assert (saved["device"], saved["cuda_visible_devices"], saved["name"]) == ("cpu", "", "CPU")
    assert devices.read_device(run) == "cpu"
    out = tmp_path / "cubes.h5"
    env = _cli_process("sample", "--chain", run, "--n", "1", "--out", out, "--quiet", "--device", "CPU")
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["JAX_PLATFORMS"] == "cpu"
    import h5py

    with h5py.File(out) as f:
        assert f["data"].shape == (1, 4, 4, 4) and f.attrs["complete"]


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two fake GPUs (NVML stand-in) for the CLI, with the backend counted as not loaded yet; this
    process's device environment is restored afterwards. The backend really is loaded, so training
    still runs on the CPU: what is checked is what --device does before the backend starts."""
    for key in _ENV_KEYS:
        monkeypatch.setenv(key, "untouched")  # registers the value to restore...
        monkeypatch.delenv(key)  # ...and starts without it
    fake = FakeNvml([gpu(name="H200-a"), gpu(name="H200-b", used=70)])
    monkeypatch.setattr(devices, "DeviceMonitor", lambda: DeviceMonitor(NvmlSource(fake)))
    monkeypatch.setattr(devices, "loaded_backends", lambda: [])
    return fake


def test_train_and_sample_device_gpu_set_cuda_visible_devices_and_train_records_the_gpu(fake_gpus, tiny_toml, tmp_path):
    from test_stats_cli import run_cli

    run = tmp_path / "run"
    argv = ["train", "--config", tiny_toml, "--scale", "3", "--run-dir", run, "--steps", "1", "--quiet"]
    assert run_cli([str(a) for a in argv + ["--device", "gpu:1"]]) == 0
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1" and os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "JAX_PLATFORMS" not in os.environ
    saved = json.loads((run / devices.DEVICE_FILE).read_text())
    assert (saved["device"], saved["cuda_visible_devices"], saved["name"], saved["uuid"]) == \
        ("gpu:1", "1", "H200-b", "GPU-H200-b")
    assert fake_gpus.inits == fake_gpus.shutdowns == 1  # one read, and NVML let go
    out = tmp_path / "cubes.h5"
    assert run_cli(["sample", "--chain", str(run), "--n", "1", "--out", str(out), "--quiet", "--device", "gpu:0"]) == 0
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0" and out.exists()


def test_device_this_machine_lacks_changes_nothing(fake_gpus, tiny_toml, tmp_path, capfd):
    from test_stats_cli import run_cli

    run = tmp_path / "run"
    argv = ["train", "--config", tiny_toml, "--scale", "3", "--run-dir", run, "--steps", "1", "--quiet",
            "--device", "gpu:2"]
    assert run_cli([str(a) for a in argv]) == 2
    err = capfd.readouterr().err.strip()
    assert err == "nbgan train: error: --device gpu:2: no such device on this machine; it has gpu:0, gpu:1, cpu"
    assert not run.exists()
    assert not any(key in os.environ for key in _ENV_KEYS)
    assert run_cli(["sample", "--chain", str(run), "--n", "1", "--out", str(tmp_path / "o.h5"),
                    "--device", "gpu:9"]) == 2
    assert "--device gpu:9: no such device" in capfd.readouterr().err
    assert not any(key in os.environ for key in _ENV_KEYS) and not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("user_setting, expected", [(None, "True"), ("0", "False")])
def test_importing_nbgan_turns_tensorflows_onednn_kernels_on_unless_the_user_chose(user_setting, expected):
    # TensorFlow leaves oneDNN off on CPUs without AVX512_VNNI/BF16 or AMX (a 30x slower train step on
    # an AVX2 EPYC); nbgan_app must set the switch before TensorFlow loads, and keep a user's choice
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if user_setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_setting
    code = ("import os, nbgan_app.training\n"
            "from tensorflow.python.util import _pywrap_util_port as port\n"
            "print('SWITCH', os.environ['TF_ENABLE_ONEDNN_OPTS'], 'ONEDNN', port.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert f"SWITCH {user_setting or '1'} ONEDNN {expected}" in out.stdout, out.stderr[-500:]


def test_cpu_runs_bf16_reads_the_x86_flags_and_says_nothing_elsewhere():
    intel = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile\n"
    epyc = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma vaes\nbugs\t\t: sysret_ss_attrs\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes bf16\n"
    assert devices.cpu_runs_bf16(intel) is True
    assert devices.cpu_runs_bf16(epyc) is False
    assert devices.cpu_runs_bf16(arm) is None


@pytest.mark.parametrize("precision, cpu_bf16, gpu, warned", [
    ("mixed_bfloat16", False, False, True), ("mixed_bfloat16", True, False, False),
    ("mixed_bfloat16", None, False, False), ("mixed_bfloat16", False, True, False),
    ("float32", False, False, False)])
def test_training_warns_of_bf16_emulated_on_a_cpu_only(tiny_config, monkeypatch, precision, cpu_bf16, gpu, warned):
    import dataclasses

    from nbgan_app.training_setup import precision_warning

    monkeypatch.setattr(devices, "cpu_runs_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(devices, "accelerator_visible", lambda: gpu)
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, precision=precision))
    message = precision_warning(config)
    assert (message is not None) == warned
    if warned:
        assert "mixed_bfloat16" in message and "\n" not in message
