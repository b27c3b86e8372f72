"""Running ldmpick's measurements on a Ray cluster (the optional ``cluster`` extra: ``pip install "ldmpick[cluster]"``).

Two jobs are spread over a cluster, both with the same task code as the single-machine run:

- **calibrate**: the grid's shards (``calibration_shards.ShardTask``: one configuration, one range of its images) run
  as Ray tasks, each with the resources it needs (one GPU; or ``threads`` CPUs for CPU work). A task returns the
  images' feature vectors and prompt-accuracy counts, never the images. The driver keeps every finished shard in its
  ``ShardStore`` and computes each configuration's FID exactly as the single-machine path does. A worker lost
  mid-task is retried by Ray (``max_retries``); finished shards are never recomputed.
- **profile**: one task per distinct device type in the cluster (GPU model, or CPU model for CPU-only nodes),
  pinned to a node of that type; each returns a profile measured there, with that node's fingerprint.

Ray moves task arguments and results with its own serialiser between the cluster's processes; run ldmpick only on
a cluster whose nodes you trust (Ray's own security model). Files on disk stay JSON, CSV and safetensors.
No printing here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ldmpick.errors import LdmpickError, RuntimeFailure, UsageError

INSTALL_HINT = 'pip install "ldmpick[cluster]"'
LOCAL = "local"
# what a worker needs to resolve models and data the way the driver does (only for clusters this process starts,
# or that share the driver's file system)
FORWARDED_ENV = ("LDMPICK_HOME", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "OMP_NUM_THREADS")
TASK_RETRIES = 3  # a task whose worker died is run again (its shard was not finished, so nothing is lost)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--cluster needs Ray, which is not installed; install it with: {INSTALL_HINT}") from None
    return ray


@dataclass
class ClusterInfo:
    address: str  # "local" for a cluster this process started
    nodes: int
    cpus: float
    gpus: float

    def describe(self) -> str:
        gpus = f", {self.gpus:g} GPU(s)" if self.gpus else ""
        return f"{self.nodes} node(s), {self.cpus:g} CPU(s){gpus}"


def cluster_info(address: str) -> ClusterInfo:
    ray = _ray()
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterInfo(address, nodes, float(res.get("CPU", 0)), float(res.get("GPU", 0)))


@contextmanager
def connected(address: str | None, num_cpus: int | None = None) -> Iterator[ClusterInfo]:
    """Connect to the Ray cluster at ``address`` for the duration of the block.

    ``None`` or ``"local"``: start a local cluster in this process (``num_cpus`` workers' worth of CPUs; default: all
    of this machine's), shut down at the end. ``"auto"``: the cluster already running on this machine (``ray start
    --head``). Anything else: a Ray address (``ray://head:10001`` or ``head:6379``). If this process is already
    connected (tests start one cluster for several runs), that connection is used and left open.
    """
    ray = _ray()
    address = address or LOCAL
    if ray.is_initialized():
        yield cluster_info(address)
        return
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                                  runtime_env={"env_vars": env} if env else None)
    try:
        if address == LOCAL:
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise RuntimeFailure(f"cannot connect to the Ray cluster at '{address}': {first[:200]}") from None
    try:
        yield cluster_info(address)
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------- calibrate

_MEASURER: dict[str, Any] = {}  # per worker process: the measurer of the request it last served (a loaded pipeline)


def _measure_shard(req: Any, task: Any, threads: int) -> Any:
    """Runs in a Ray worker: the same ``ShardMeasurer.measure`` the single-machine run calls."""
    import torch

    from ldmpick.calibration_shards import ShardMeasurer, request_digest

    torch.set_num_threads(threads)
    key = request_digest(req)
    if key not in _MEASURER:
        _MEASURER.clear()  # one request's models in memory at a time
        _MEASURER[key] = ShardMeasurer(req)
    return _MEASURER[key].measure(task)


class RayShardRunner:
    """Runs calibration shards as Ray tasks and yields them as they finish (``calibration.run_calibration``'s
    ``runner``). CPU work takes ``threads`` CPUs per task; CUDA work one GPU."""

    def __init__(self, req: Any, info: ClusterInfo, threads: int = 1):
        if threads < 1:
            raise UsageError(f"--threads must be at least 1 (got {threads})")
        self.req = req
        self.info = info
        self.threads = threads
        gpu = str(req.device).startswith("cuda")
        if gpu and info.gpus < 1:
            raise UsageError(f"--device {req.device}: the Ray cluster has no GPU ({info.describe()})")
        if not gpu and info.cpus < threads:
            raise UsageError(f"--threads {threads}: the Ray cluster has only {info.cpus:g} CPU(s)")
        self.resources = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": threads}
        self.slots = int(info.gpus if gpu else info.cpus // threads)

    def run(self, tasks: list[Any]) -> Iterator[Any]:
        ray = _ray()
        if not tasks:
            return
        remote = ray.remote(max_retries=TASK_RETRIES)(_measure_shard).options(**self.resources)
        req_ref = ray.put(self.req)
        pending = {remote.remote(req_ref, t, self.threads): t for t in tasks}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    yield self._result(ray, ref, task)
        finally:
            for ref in pending:  # interrupted: what did not finish is dropped (and rerun by --resume)
                ray.cancel(ref, force=True)

    @staticmethod
    def _result(ray: Any, ref: Any, task: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LdmpickError):
                raise cause from None
            raise RuntimeFailure(f"shard {task.key} failed on the cluster: {_first_line(cause or exc)}") from None
        except ray.exceptions.RayError as exc:
            raise RuntimeFailure(f"shard {task.key} was lost {TASK_RETRIES + 1} times on the cluster "
                                 f"({exc.__class__.__name__}); rerun with --resume") from None

    def describe(self) -> str:
        return f" · {self.slots} worker slot(s) on {self.info.nodes} node(s)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]
