"""How work is executed: the device, dtype and mode defaults, the CPU thread policy, the memory that is free, and
how a denoiser step runs (eagerly, replayed from a CUDA graph, or compiled).

The same runner is used by the profiler and by generation, so that what is measured is what runs. A runner wraps a
denoiser's ``forward`` (a UNet or a transformer of any family) and takes the same arguments.

Threads: torch's default (every logical CPU for intra-op work, plus an inter-op pool) oversubscribes a machine where
other work runs: its OpenMP threads spin waiting for each other, and a 0.2 s image took 27 s on a busy 2-core machine
(0.5 s with one thread). ``choose_threads`` is the one policy: an explicit ``--threads`` wins, then
``OMP_NUM_THREADS``; otherwise one thread per physical core this process may use (affinity and cgroup quota), less
the cores other work keeps busy now (``competing_tasks``), at least one; inter-op parallelism off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ldmpick.files.errors import UsageError

MODES = ("eager", "cudagraph", "compile")
# --dtype names -> torch dtype attribute names
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
MAX_GRAPHS = 4  # distinct input signatures captured per runner; past that, new signatures run eagerly


def default_device() -> str:
    """The GPU if there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> str:
    """fp16 on a GPU, fp32 on the CPU (fp16 there is very slow or unimplemented)."""
    return "fp16" if device.startswith("cuda") else "fp32"


def check_dtype(dtype: str, device: str) -> str:
    """A --dtype this device runs: a known name, and not fp16 on the CPU (very slow or unimplemented there, and
    no deployment runs it). One rule for profile, generate and calibrate."""
    from ldmpick.files.errors import unknown_name

    if dtype not in DTYPES:
        raise unknown_name("dtype", dtype, DTYPES)
    if device.split(":")[0] == "cpu" and dtype == "fp16":
        raise UsageError("fp16 on the CPU is not supported (very slow or unimplemented, and not how anyone deploys); "
                         "use --dtype fp32 or bf16")
    return dtype


def default_mode(device: str) -> str:
    """CUDA-graph replay on a GPU (eager PyTorch is host-bound there), eager on the CPU."""
    return "cudagraph" if device.startswith("cuda") else "eager"


# ---------------------------------------------------------------------------------------------- CPU threads

MAX_THREADS = 1024
BUSY_LOAD_PER_CORE = 0.5  # other runnable tasks on more than half the cores: other work competes for them


@dataclass(frozen=True)
class ThreadChoice:
    """How many torch CPU threads a command runs with, and why."""

    threads: int
    cores: int  # physical cores this process may use
    load: float | None  # other tasks competing for the CPUs when chosen (None: unknown)
    source: str  # "--threads", "OMP_NUM_THREADS", "profile" or "default"

    @property
    def busy(self) -> bool:
        return self.load is not None and self.load > BUSY_LOAD_PER_CORE * self.cores

    def advice(self, device: str) -> str | None:
        """What to do when the machine is busy (one line), else None. GPU work is not slowed by CPU load much."""
        if not self.busy or device.startswith("cuda"):
            return None
        how = {"--threads": "as asked", "OMP_NUM_THREADS": "from OMP_NUM_THREADS",
               "profile": "as the profile that predicts this run measured",
               "default": "fewer, so as not to fight the other work"}[self.source]
        then = " or pass --threads 1" if self.threads > 1 else ""
        return (f"note: the machine is busy ({self.load:.0f} other running task(s) on {self.cores} core(s)); "
                f"running with {self.threads} torch thread(s) ({how}). Expect slower, noisier timings than the "
                f"profile's: run when the machine is idle{then}")


def physical_cores(sysfs: str = "/sys/devices/system/cpu") -> int:
    """Physical cores this process may run on: its CPU affinity with SMT siblings counted once (``sysfs``: where
    the CPU topology is read), capped by a cgroup CPU quota (containers)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topology = f"{sysfs}/cpu{cpu}/topology"
        sibling = None
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                with open(f"{topology}/{name}", encoding="ascii") as fh:
                    sibling = fh.read().strip()
                break
            except OSError:
                continue
        cores.add(sibling if sibling is not None else str(cpu))
    count = len(cores) or 1
    quota = cgroup_cpu_quota()
    return max(1, min(count, math.ceil(quota))) if quota is not None else count


def cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup (v2 ``cpu.max``) allows, or None when unlimited or unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def competing_tasks(samples: int = 5, interval_s: float = 0.02) -> float | None:
    """How many other tasks are running right now: the median over a few snapshots of the kernel's runnable-task
    count (``/proc/loadavg``), less this process. Unlike the 1-minute load average, it does not count this
    program's own earlier runs (back-to-back commands on an idle machine would otherwise take fewer threads each
    time). Elsewhere: the 1-minute load average. None when unknown."""
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            break
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(interval_s)
    if counts:
        return float(statistics.median(counts))
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def choose_threads(requested: int | None, profiled: int | None = None) -> ThreadChoice:
    """The thread count for this run (see the module's description); ``requested`` is ``--threads``; ``profiled``
    the count of the profile that predicts this run (a run with another count than its prediction's is another
    measurement: generate takes the profile's unless told otherwise)."""
    cores = physical_cores()
    load = competing_tasks()
    if requested is not None:
        if not 1 <= requested <= MAX_THREADS:
            raise UsageError(f"--threads must be between 1 and {MAX_THREADS} (got {requested})")
        return ThreadChoice(requested, cores, load, "--threads")
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and 1 <= int(omp) <= MAX_THREADS:
        return ThreadChoice(int(omp), cores, load, "OMP_NUM_THREADS")
    if profiled is not None and 1 <= profiled <= MAX_THREADS:
        return ThreadChoice(profiled, cores, load, "profile")
    free = cores - (load or 0.0)
    return ThreadChoice(max(1, min(cores, math.floor(free + 0.5))), cores, load, "default")


def apply_threads(requested: int | None, profiled: int | None = None) -> ThreadChoice:
    """Choose the thread count and set torch's intra-op threads to it, inter-op parallelism to one thread."""
    import torch

    choice = choose_threads(requested, profiled)
    torch.set_num_threads(choice.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first parallel work of the process (a second command in tests)
        pass
    return choice


# ---------------------------------------------------------------------------------------------- memory


def available_memory_bytes(device: str) -> int | None:
    """Memory a new module may take on ``device`` now: free GPU memory, or the CPU's available memory (see
    ``available_cpu_memory_bytes``). None when unknown."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return available_cpu_memory_bytes()


def available_cpu_memory_bytes() -> int | None:
    """Memory available to new allocations without swapping: ``MemAvailable`` of /proc/meminfo (else the free
    pages of ``os.sysconf``), no more than what a cgroup memory limit leaves. None when unknown."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    limit = _cgroup_memory_left()
    return min(available, limit) if limit is not None else available


def _cgroup_memory_left() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    try:
        return max(0, int(limit) - used)
    except ValueError:
        return None


def check_mode(mode: str, device: str) -> None:
    if mode not in MODES:
        from ldmpick.files.errors import unknown_name

        raise unknown_name("execution mode", mode, MODES)
    if mode in ("cudagraph", "compile") and not device.startswith("cuda"):
        # compile on the CPU: measured here, its steps kept recompiling (0.9 s per step of a model whose eager
        # step is 7 ms), so a profile would record compilation, not generation
        raise UsageError(f"mode '{mode}' needs a CUDA device (got '{device}'); use --mode eager")


class DenoiserRunner:
    """Calls ``forward`` (a denoiser's original forward) in an execution mode, with the same arguments.

    ``cudagraph`` captures one graph per input signature (the structure of the arguments, every tensor's shape,
    dtype and device, every non-tensor value) with static input buffers, and replays it: each call copies the tensor
    inputs into those buffers and returns fresh copies of the outputs. ``compile`` uses ``torch.compile`` with
    CUDA graphs ("reduce-overhead").
    """

    def __init__(self, forward: Callable[..., Any], mode: str, device: str):
        check_mode(mode, device)
        self.forward = forward
        self.mode = mode
        self.device = device
        self.graphs: dict[Any, tuple[Any, list[Any], Any, Any]] = {}
        self.compiled: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "eager":
            return self.forward(*args, **kwargs)
        if self.mode == "compile":
            return self._compiled(*args, **kwargs)
        return self._graphed(*args, **kwargs)

    def _compiled(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        from torch.utils._pytree import tree_map

        if self.compiled is None:
            self.compiled = torch.compile(self.forward, mode="reduce-overhead")
        out = self.compiled(*args, **kwargs)
        # outputs of a CUDA-graph tree are overwritten by the next replay: hand out copies
        return tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)

    def _graphed(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        from torch.utils._pytree import tree_flatten, tree_unflatten

        flat, spec = tree_flatten((args, kwargs))
        key = (str(spec), tuple(
            (tuple(x.shape), x.dtype, str(x.device)) if isinstance(x, torch.Tensor) else (type(x).__name__, repr(x))
            for x in flat))
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= MAX_GRAPHS:
                return self.forward(*args, **kwargs)
            entry = self.graphs[key] = self._capture(flat, spec)
        graph, static_flat, out_flat, out_spec = entry
        for static, x in zip(static_flat, flat):
            if isinstance(x, torch.Tensor) and static is not x:
                static.copy_(x)
        graph.replay()
        return tree_unflatten([o.clone() if isinstance(o, torch.Tensor) else o for o in out_flat], out_spec)

    def _capture(self, flat: list[Any], spec: Any) -> tuple[Any, list[Any], Any, Any]:
        import torch
        from torch.utils._pytree import tree_flatten, tree_unflatten

        static_flat = [x.detach().clone() if isinstance(x, torch.Tensor) else x for x in flat]
        args, kwargs = tree_unflatten(static_flat, spec)
        device = torch.device(self.device)
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(3):  # warm-up on a side stream, as CUDA graph capture requires
                self.forward(*args, **kwargs)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            out = self.forward(*args, **kwargs)
        out_flat, out_spec = tree_flatten(out)
        return graph, static_flat, out_flat, out_spec


def make_denoiser_runner(denoiser: Any, mode: str, device: str) -> DenoiserRunner:
    """A runner of ``denoiser``'s forward in ``mode`` (``denoiser`` itself is not changed)."""
    return DenoiserRunner(denoiser.forward, mode, device)


def install_runner(denoiser: Any, mode: str, device: str) -> DenoiserRunner:
    """Make ``denoiser(...)`` (as a diffusers pipeline calls it) run in ``mode``: its ``forward`` is replaced by a
    runner of the original one. Hooks registered on the module still run."""
    runner = make_denoiser_runner(denoiser, mode, device)
    if mode != "eager":
        denoiser.forward = runner
    return runner
