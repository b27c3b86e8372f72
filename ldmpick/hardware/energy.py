"""The energy a block of work took on an NVIDIA GPU: NVML's total-energy counter, read before and after it.

``nvmlDeviceGetTotalEnergyConsumption`` (nvidia-ml-py's ``pynvml``, Volta and newer) is the millijoules the whole
board has used since the driver loaded, idle draw included. The counter moves in steps (about every 10 ms on some
boards, more on others), so a block should do at least ``MIN_BLOCK_S`` of work for a reading good to about 1%, and
the work must be finished when the counter is read: pass the device's ``synchronize``.

Nothing here raises for want of a GPU: no ``pynvml``, no driver, no NVIDIA device, a CPU device, a MIG slice or a
board without the counter all give ``None`` (``EnergyMeter.open``) or a block whose ``reading`` stays ``None``.
``pynvml`` is imported only when a meter is opened. Errors of the measured work itself are not caught.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MIN_BLOCK_S = 1.0  # shorter blocks are dominated by the counter's update steps
MAX_CALLS = 10_000  # calls of one block, however fast a call is


@dataclass(frozen=True)
class EnergyReading:
    """What one block used: joules over ``seconds`` of wall time on ``device`` (its NVML name)."""

    joules: float
    seconds: float
    device: str

    @property
    def watts(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else 0.0

    @property
    def too_short(self) -> bool:
        """The block ran under ``MIN_BLOCK_S``: the counter's steps may be a large share of the reading."""
        return self.seconds < MIN_BLOCK_S

    def per(self, count: int) -> float:
        """Joules per one of ``count`` repetitions in the block (e.g. denoiser evaluations)."""
        return self.joules / count


@dataclass
class EnergyBlock:
    """Filled in when the ``with`` block ends: ``reading`` stays ``None`` where the counter could not be read."""

    reading: EnergyReading | None = None


class EnergyMeter:
    """One GPU's total-energy counter, open until ``close`` (or the end of a ``with``)."""

    def __init__(self, nvml: Any, handle: Any, device: str):
        self._nvml, self._handle, self.device = nvml, handle, device

    @classmethod
    def open(cls, device: str = "cuda", uuid: str | None = None) -> EnergyMeter | None:
        """The meter of ``device`` (``cuda``, ``cuda:N``: NVML's index N; ``uuid``, as torch's
        ``get_device_properties(i).uuid`` gives it, picks the board exactly whatever ``CUDA_VISIBLE_DEVICES``
        says), or ``None`` where its counter cannot be read."""
        m = re.fullmatch(r"cuda(?::(\d+))?", device)
        if m is None:
            return None
        pynvml = nvml()
        if pynvml is None:
            return None
        try:
            if uuid is not None:
                text = str(uuid)
                handle = pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
            else:
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(m.group(1) or 0))
            name = pynvml.nvmlDeviceGetName(handle)
            meter = cls(pynvml, handle, name.decode() if isinstance(name, bytes) else str(name))
            if meter.millijoules() is None:  # no counter on this board (pre-Volta, a MIG slice, a virtual GPU)
                meter.close()
                return None
            return meter
        except Exception:
            _shutdown(pynvml)
            return None

    def millijoules(self) -> int | None:
        """The counter now, or ``None`` if it cannot be read."""
        if self._nvml is None:
            return None
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:
            return None

    def close(self) -> None:
        if self._nvml is not None:
            _shutdown(self._nvml)
            self._nvml = None

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def block(self, synchronize: Callable[[], None] | None = None) -> Iterator[EnergyBlock]:
        """Reads the counter around the ``with`` body (after ``synchronize``, both times): its ``reading`` is the
        energy and wall time between, or ``None`` when a read failed or the counter went back (a driver reload)."""
        out = EnergyBlock()
        if synchronize is not None:
            synchronize()
        start_mj, start_s = self.millijoules(), time.perf_counter()
        yield out
        if synchronize is not None:
            synchronize()
        end_mj, end_s = self.millijoules(), time.perf_counter()
        if start_mj is not None and end_mj is not None and end_mj >= start_mj:
            out.reading = EnergyReading((end_mj - start_mj) / 1e3, end_s - start_s, self.device)


@contextmanager
def energy_block(device: str = "cuda", *, uuid: str | None = None,
                 synchronize: Callable[[], None] | None = None) -> Iterator[EnergyBlock]:
    """The energy of the ``with`` body on ``device``, with a meter opened and closed around it (``EnergyMeter.open``
    and ``block``): ``reading`` stays ``None`` where there is no counter, e.g. on every CPU."""
    meter = EnergyMeter.open(device, uuid)
    if meter is None:
        yield EnergyBlock()
        return
    with meter, meter.block(synchronize) as out:
        yield out


def joules_per_call(meter: EnergyMeter | None, fn: Callable[[], Any], seconds_per_call: float, *,
                    synchronize: Callable[[], None] | None = None, min_seconds: float = MIN_BLOCK_S,
                    min_calls: int = 3) -> float | None:
    """The mean joules of one call of ``fn``: as many calls as fill ``min_seconds`` at ``seconds_per_call`` (the
    timed median; at least ``min_calls``, at most ``MAX_CALLS``) in one block of ``meter``. ``None`` without a
    meter or a reading; the calls are not made without a meter."""
    if meter is None:
        return None
    calls = min(MAX_CALLS, max(min_calls, math.ceil(min_seconds / seconds_per_call) if seconds_per_call > 0
                               else MAX_CALLS))
    with meter.block(synchronize) as out:
        for _ in range(calls):
            fn()
    return out.reading.per(calls) if out.reading is not None else None


def nvml() -> Any | None:
    """``pynvml``, initialised (each call is matched by one ``nvmlShutdown``), or ``None`` without it or a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # not installed, no driver, no NVIDIA device
        return None
    return pynvml


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass
