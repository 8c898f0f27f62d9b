"""Which processes make up a `--distribute` run, read from the environment (no backend is imported).

`processes_from_env` reads them; the first match wins:
1. NBGAN_NUM_PROCESSES (the count), NBGAN_PROCESS_ID (this one, 0 to count-1;
   0 is the chief) and NBGAN_COORDINATOR (host:port of process 0; TensorFlow
   needs every process's host:port, comma-separated, process 0 first: each
   process listens on its own). All three, or none.
2. TensorFlow only: TF_CONFIG as the user set it (`cluster` of `chief` and/or
   `worker` tasks, `task`), used as it is.
3. Slurm, inside `srun` with more than one task: SLURM_STEP_NUM_TASKS,
   SLURM_PROCID, SLURM_STEP_NODELIST and SLURM_STEP_TASKS_PER_NODE, which srun
   sets for each task (a batch script's own shell, outside srun, is one
   process whatever SLURM_NTASKS says); process 0 is on the first node. Ports: NBGAN_PORT,
   else 61440 + SLURM_JOB_ID mod 4096 (the port jax.distributed picks under
   Slurm); with TensorFlow the i-th task of a node listens on port + i, which
   assumes Slurm's default block distribution of tasks over nodes.
Otherwise the run is one process. Every process must see the same run
directory (a shared filesystem); the chief (process 0) alone writes in it.
PyTorch has no multi-process path here (`--distribute` refuses it).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from nbgan_app.errors import InputError

COORDINATOR = "NBGAN_COORDINATOR"
NUM_PROCESSES = "NBGAN_NUM_PROCESSES"
PROCESS_ID = "NBGAN_PROCESS_ID"
PORT = "NBGAN_PORT"
_EXPLICIT = (NUM_PROCESSES, PROCESS_ID, COORDINATOR)
_ADDRESS = re.compile(r"[^\s:,]+:(\d{1,5})")


@dataclass(frozen=True)
class Processes:
    """The processes of one run: `count`, this one's `index` (0: the chief, which alone writes),
    `addresses` (host:port, process 0's first; one per process where known), `source` (the
    variables that said so, for messages) and `tf_config` (TF_CONFIG set by the user, kept as it is)."""

    count: int = 1
    index: int = 0
    addresses: tuple[str, ...] = ()
    source: str = ""
    tf_config: bool = False

    @property
    def chief(self) -> bool:
        return self.index == 0


def _whole(name: str, text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise InputError(f"{name}: expected a whole number {bounds}. Received: {text!r}")
    return value


def _addresses(name: str, text: str) -> tuple[str, ...]:
    found = tuple(a.strip() for a in text.split(","))
    for address in found:
        match = _ADDRESS.fullmatch(address)
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise InputError(f"{name}: expected host:port (comma-separated, process 0 first). Received: {text!r}")
    return found


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compact host list ("gpu[01-03,07],login1") as host names, in order.

    One bracket group per name, as Slurm writes node lists; InputError otherwise.
    """
    hosts, rest = [], text.strip()
    refusal = InputError(f"SLURM_STEP_NODELIST: cannot read the node list {text!r}; set {COORDINATOR}, "
                         f"{NUM_PROCESSES} and {PROCESS_ID} instead")
    while rest:
        match = re.match(r"([^\[\],]+)(?:\[([\d,-]+)\])?([^\[\],]*)(?:,|$)", rest)
        if match is None:
            raise refusal
        prefix, ranges, suffix = match.groups()
        if ranges is None:
            hosts.append(prefix + suffix)
        else:
            for part in ranges.split(","):
                low, dash, high = part.partition("-")
                if not low.isdigit() or (dash and not high.isdigit()):
                    raise refusal
                width = len(low)
                for i in range(int(low), int(high or low) + 1):
                    hosts.append(f"{prefix}{i:0{width}d}{suffix}")
        rest = rest[match.end():]
    return hosts


def expand_tasks_per_node(text: str) -> list[int]:
    """SLURM_STEP_TASKS_PER_NODE ("2(x3),1") as a count per node ([2, 2, 2, 1])."""
    counts = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if match is None:
            raise InputError(f"SLURM_STEP_TASKS_PER_NODE: cannot read {text!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def _from_tf_config(text: str) -> Processes:
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        tasks = [(kind, i, address) for kind in ("chief", "worker") for i, address in enumerate(cluster.get(kind, ()))]
        addresses = tuple(address for _, _, address in tasks)
        index = [(kind, i) for kind, i, _ in tasks].index((task["type"], int(task["index"])))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InputError("TF_CONFIG: expected {\"cluster\": {\"worker\": [\"host:port\", ...]}, \"task\": "
                         "{\"type\": \"worker\", \"index\": i}} (chief and worker tasks only)") from None
    return Processes(len(addresses), index, addresses, "TF_CONFIG", tf_config=True)


def _from_slurm(env, count: int) -> Processes:
    index = _whole("SLURM_PROCID", env.get("SLURM_PROCID"), 0, count - 1)
    hosts = expand_hostlist(env.get("SLURM_STEP_NODELIST") or "")
    if not hosts:
        raise InputError("SLURM_STEP_NODELIST: not set; run nbgan train --distribute under srun")
    if PORT in env:
        port = _whole(PORT, env[PORT], 1, 65535)
    else:
        port = 61440 + _whole("SLURM_JOB_ID", env.get("SLURM_JOB_ID"), 0) % 4096
    per_node = env.get("SLURM_STEP_TASKS_PER_NODE")
    addresses = [f"{hosts[0]}:{port}"]
    if per_node:
        counts = expand_tasks_per_node(per_node)
        listed = [f"{host}:{port + i}" for host, n in zip(hosts, counts) for i in range(n)]
        if len(listed) == count and port + max(counts) - 1 < 65536:
            addresses = listed
    return Processes(count, index, tuple(addresses), "SLURM_*")


def processes_from_env(env=None, backend: str | None = None) -> Processes:
    """The processes of a `--distribute` run, from the environment (module docstring). InputError
    naming the variable when one is malformed, or when TensorFlow lacks a process's address."""
    env = os.environ if env is None else env
    if any(name in env for name in _EXPLICIT):
        missing = [name for name in _EXPLICIT if name not in env]
        if missing:
            raise InputError(f"{missing[0]}: not set; {', '.join(_EXPLICIT)} go together")
        count = _whole(NUM_PROCESSES, env[NUM_PROCESSES], 1)
        found = Processes(count, _whole(PROCESS_ID, env[PROCESS_ID], 0, count - 1),
                          _addresses(COORDINATOR, env[COORDINATOR]), "NBGAN_*")
        if len(found.addresses) not in (1, count):
            raise InputError(f"{COORDINATOR}: {len(found.addresses)} addresses for {NUM_PROCESSES}={count}; "
                             f"give process 0's, or one per process")
    elif backend == "tensorflow" and env.get("TF_CONFIG"):
        found = _from_tf_config(env["TF_CONFIG"])
    elif "SLURM_PROCID" in env and env.get("SLURM_STEP_NUM_TASKS"):
        count = _whole("SLURM_STEP_NUM_TASKS", env["SLURM_STEP_NUM_TASKS"], 1)
        if count == 1:
            return Processes()
        found = _from_slurm(env, count)
    else:
        return Processes()
    if backend == "tensorflow" and found.count > 1 and len(found.addresses) != found.count:
        name = COORDINATOR if found.source == "NBGAN_*" else "SLURM_STEP_TASKS_PER_NODE"
        raise InputError(f"{name}: TensorFlow needs the host:port of each of the {found.count} processes "
                         f"(comma-separated, process 0 first), or TF_CONFIG")
    return found
