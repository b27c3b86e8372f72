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

from ldmpick.files.errors import LdmpickError, RuntimeFailure, UsageError

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
    if address is not None and not address.strip():  # '' is no address (it started a local cluster)
        raise UsageError("--cluster '' is empty: give 'local', 'auto' or a Ray address (ray://head:10001)")
    ray = _ray()
    address = address or LOCAL
    if address not in (LOCAL, "auto"):
        check_reachable(address)
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


CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line and within ``timeout_s``, a Ray address nothing answers at (Ray itself would retry for
    minutes). ``address``: ``host:port`` or ``ray://host:port``."""
    import socket

    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--cluster '{address}': give 'local', 'auto', or a Ray address host:port "
                         "(e.g. head:6379 or ray://head:10001)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            speaks = os.environ.get("RAY_USE_TLS") in ("1", "true") or _speaks_grpc(conn, timeout_s)
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or exc.__class__.__name__)
        raise RuntimeFailure(f"cannot reach the Ray cluster at '{address}' ({why}); is 'ray start --head' running "
                             "there, and is the port open?") from None
    if not speaks:  # a port that takes TCP but is no Ray server: Ray itself retried for 32 s and printed its warning
        raise RuntimeFailure(f"'{address}' accepts connections but is not a Ray server (no gRPC answer within "
                             f"{timeout_s:g} s); give the head's GCS port (6379) or its client port (ray://head:10001)")


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS


def _speaks_grpc(conn: Any, timeout_s: float) -> bool:
    """Whether the peer answers an HTTP/2 client preface with the SETTINGS frame every HTTP/2 server (gRPC: Ray's
    GCS and client server) sends first."""
    conn.settimeout(timeout_s)
    try:
        conn.sendall(HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:
        return False
    return head[3] == 4  # frame type SETTINGS


# ---------------------------------------------------------------------------------------------- calibrate

_MEASURER: dict[str, Any] = {}  # per worker process: the measurer of the request it last served (a loaded pipeline)


def _measure_shard(req: Any, task: Any, threads: int) -> Any:
    """Runs in a Ray worker: the same ``ShardMeasurer.measure`` the single-machine run calls."""
    from ldmpick.calibration.shards import ShardMeasurer, request_digest
    from ldmpick.hardware.execution import apply_threads

    apply_threads(threads)
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
        for task, result in as_completed(pending, lambda t: f"shard {t.key}"):
            yield result

    def describe(self) -> str:
        return f" · {self.slots} worker slot(s) on {self.info.nodes} node(s)"


def as_completed(pending: dict[Any, Any], what: Any) -> Iterator[tuple[Any, Any]]:
    """(item, result) for each Ray object ref of ``pending`` (ref -> item) as it finishes. A failure is one line:
    ldmpick's own errors come through as they are; ``what(item)`` names the work in others. Refs not finished when
    the caller stops (an interrupt, an error) are cancelled."""
    ray = _ray()
    pending = dict(pending)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, LdmpickError):
                        raise cause from None
                    raise RuntimeFailure(f"{what(item)} failed on the cluster: {_first_line(cause or exc)}") from None
                except ray.exceptions.RayError as exc:
                    raise RuntimeFailure(f"{what(item)} was lost on the cluster ({exc.__class__.__name__}, after "
                                         f"{TASK_RETRIES} retries); rerun with --resume") from None
                yield item, result
    finally:
        for ref in pending:  # what did not finish is dropped (and rerun by --resume)
            ray.cancel(ref, force=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]


# ---------------------------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class DeviceGroup:
    """The cluster's nodes with one kind of device: its name, how many nodes have it, and the node that measures."""

    key: str  # "cuda:NVIDIA H100 80GB HBM3", "cpu:AMD EPYC 7B13"
    name: str
    node_id: str
    nodes: int
    cpus: float  # the measuring node's CPUs (a CPU profile holds all of them, so nothing else runs there)


def _device_of_node(device: str) -> tuple[str, str]:
    """Runs on a node: what ``device`` is there (without importing torch)."""
    from ldmpick.hardware.fingerprint import light_fingerprint

    fp = light_fingerprint(device)
    kind = "cuda" if fp.get("kind") == "cuda" else "cpu"
    return f"{kind}:{fp.get('name')}", str(fp.get("name"))


def device_groups(device: str) -> list[DeviceGroup]:
    """One group per distinct device type among the cluster's alive nodes (GPU model for ``cuda``, CPU model for
    ``cpu``); nodes without a GPU are left out of a ``cuda`` profile."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpu = device.startswith("cuda")
    nodes = [n for n in ray.nodes() if n.get("Alive") and (not gpu or n.get("Resources", {}).get("GPU", 0) >= 1)]
    if not nodes:
        raise UsageError(f"--device {device}: no node of the Ray cluster has a GPU" if gpu
                         else "the Ray cluster has no alive node")
    probe = ray.remote(_device_of_node)
    refs = [probe.options(num_cpus=0, num_gpus=1 if gpu else 0,
                          scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(device)
            for n in nodes]
    groups: dict[str, list[tuple[dict, str]]] = {}
    for node, (key, name) in zip(nodes, ray.get(refs)):
        groups.setdefault(key, []).append((node, name))
    return [DeviceGroup(key, members[0][1], members[0][0]["NodeID"], len(members),
                        float(members[0][0].get("Resources", {}).get("CPU", 1)))
            for key, members in sorted(groups.items())]


def _profile_on_node(req: Any) -> str:
    """Runs on a node: the same ``profiling.run_profile`` as a local ``ldmpick profile``; the profile as JSON text
    (its fingerprint is this node's)."""
    from ldmpick.measurement.profiler import run_profile

    return run_profile(req).dumps()


def profile_each_device(req: Any, groups: list[DeviceGroup]) -> Iterator[tuple[DeviceGroup, str]]:
    """Profile ``req`` once per device group, pinned to the group's measuring node (a GPU task holds one GPU; a CPU
    task holds all the node's CPUs); yields (group, profile JSON text) as each finishes."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpu = str(req.device).startswith("cuda")
    remote = ray.remote(max_retries=TASK_RETRIES)(_profile_on_node)
    pending = {}
    for g in groups:
        resources = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": g.cpus}
        strategy = NodeAffinitySchedulingStrategy(g.node_id, soft=False)
        pending[remote.options(scheduling_strategy=strategy, **resources).remote(req)] = g
    yield from as_completed(pending, lambda g: f"profiling {g.name}")
