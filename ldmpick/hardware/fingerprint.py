"""Device fingerprints: what a measurement was taken on. Never includes host or user names.

``light_fingerprint`` is cheap and torch-free (used by ``recommend`` to pick a matching profile);
``full_fingerprint`` adds clocks, power limit and library versions at measurement time.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from functools import lru_cache
from typing import Any

from ldmpick import __version__


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _nvml_gpu(index: int) -> dict[str, Any] | None:
    """GPU facts via NVML (nvidia-ml-py). None when there is no NVIDIA driver or GPU."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        if index >= pynvml.nvmlDeviceGetCount():
            return None
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(h)
        name = name.decode() if isinstance(name, bytes) else str(name)
        info: dict[str, Any] = {"kind": "cuda", "name": name, "index": index}

        def grab(key: str, read: Any) -> None:
            try:
                info[key] = read()
            except Exception:
                info[key] = None

        try:
            info["memory_bytes"] = int(pynvml.nvmlDeviceGetMemoryInfo(h).total)
        except Exception:
            info["memory_bytes"] = None
        try:
            drv = pynvml.nvmlSystemGetDriverVersion()
            info["driver_version"] = drv.decode() if isinstance(drv, bytes) else drv
        except Exception:
            info["driver_version"] = None
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion()
            info["cuda_driver_version"] = f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            info["cuda_driver_version"] = None
        grab("sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM))
        grab("sm_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM))
        grab("power_limit_w", lambda: pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0)
        grab("temperature_c", lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
        return info
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _cuda_index(device: str) -> int:
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    return int(m.group(1) or 0) if m else 0


def system_load() -> float | None:
    """1-minute load average (other work competing for the CPU makes every timing noisier)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def light_fingerprint(device: str | None = None) -> dict[str, Any]:
    """Which device this is, without importing torch: the GPU (via NVML) when there is one, else the CPU."""
    if device is None or device.startswith("cuda"):
        gpu = _nvml_gpu(_cuda_index(device or "cuda"))
        if gpu is not None:
            gpu.update(cpu_model=cpu_model(), cpu_cores=cpu_cores())
            return gpu
    return {"kind": "cpu", "name": cpu_model(), "cpu_model": cpu_model(), "cpu_cores": cpu_cores()}


def full_fingerprint(device: str) -> dict[str, Any]:
    """Everything that decides a latency, read at measurement time (torch is imported here)."""
    import torch

    fp = light_fingerprint(device)
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = _cuda_index(device)
        props = torch.cuda.get_device_properties(idx)
        fp.setdefault("name", props.name)
        if fp.get("kind") != "cuda":  # no NVML: fall back to torch's view
            fp = {"kind": "cuda", "name": props.name, "memory_bytes": int(props.total_memory),
                  "cpu_model": cpu_model(), "cpu_cores": cpu_cores()}
        fp["compute_capability"] = f"{props.major}.{props.minor}"
        fp["cuda_runtime_version"] = torch.version.cuda
        fp["cudnn_version"] = torch.backends.cudnn.version()
    try:
        import diffusers

        diffusers_version = diffusers.__version__
    except ImportError:
        diffusers_version = None
    try:
        import transformers

        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = None
    fp["torch_threads"] = torch.get_num_threads()
    fp["load_avg_1m"] = system_load()
    fp["os"] = f"{platform.system()} {platform.release()}"
    fp["machine"] = platform.machine()
    fp["versions"] = {
        "ldmpick": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "diffusers": diffusers_version,
        "transformers": transformers_version,
    }
    return fp
