"""Timing one callable on a device the way torch.utils.benchmark and hyperfine do: CUDA events on a GPU,
``perf_counter`` on a CPU, synchronizing around each call; adaptive repeats within a time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ldmpick.profiles.schema import LatencyStats

WARMUP_SECONDS = 1.0  # warm-up calls stop once they have taken this long
SLOW_MIN_RUNS = 2  # timed runs of a part whose calls do not fit its minimum run count in its budget


class Timer:
    """Times a callable on a device: CUDA events on GPU, perf_counter on CPU, synchronizing around each call."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        self.device = device

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def once(self, fn: Callable[[], Any]) -> float:
        """Milliseconds for one call of ``fn``."""
        if self.cuda:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            self.sync()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def measure(
        self, fn: Callable[[], Any], warmup: int, repeats: int, max_seconds: float, min_repeats: int = 3
    ) -> LatencyStats:
        """Time one part adaptively, the way hyperfine does: a minimum number of runs and a time budget.

        Warm up with up to ``warmup`` calls, stopping once they have taken ``WARMUP_SECONDS`` (a call that slow
        is warm after one). Then time calls until there are ``repeats`` samples, or until the next call would end
        past ``max_seconds`` (this part's budget), but never fewer than ``min_repeats`` samples, or
        ``SLOW_MIN_RUNS`` when that many calls do not fit the budget: a 6 s VAE decode is timed twice after one
        warm-up while a 2 ms sampler step keeps its repeats. The statistics come from the timed calls only, and
        ``n`` records how many there were.
        """
        estimate_ms = None
        warm_ms = 0.0
        for _ in range(warmup):
            estimate_ms = self.once(fn)
            warm_ms += estimate_ms
            if warm_ms >= WARMUP_SECONDS * 1e3:
                break
        self.sync()
        samples: list[float] = []
        floor = min(min_repeats, repeats)
        started = time.perf_counter()
        while len(samples) < repeats:
            if samples:
                if estimate_ms is None:
                    estimate_ms = samples[0]
                if estimate_ms * floor > max_seconds * 1e3:  # a slow part: a few runs are all its budget allows
                    floor = min(floor, SLOW_MIN_RUNS)
                elapsed = time.perf_counter() - started
                per_call = elapsed / len(samples)
                if len(samples) >= floor and elapsed + per_call > max_seconds:
                    break
            samples.append(self.once(fn))
        return LatencyStats.from_samples(samples)
