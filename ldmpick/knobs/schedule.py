"""How a knob changes a run's step cost: which denoiser steps run in full and which reuse a cache.

Today's latency model is ``fixed + steps x per_step``. A knob that changes every step alike (precision, compile,
attention) keeps that form with its own measured ``per_step``. A cache does not:

- a **fixed schedule** (TaylorSeer at an interval, PAB, FasterCache) decides from the step index (and the sampler's
  timesteps) alone, so it says exactly which steps are full and which are cached: a run costs
  ``fixed + n_full x full_step + n_cached x cached_step``, with both step costs measured on the device;
- an **adaptive** cache (FBCache, MagCache) skips when the features change little, which depends on the content:
  random weights cannot show its skip rate, so the rate must come from data (published rows or the user's own
  generate runs) and the prediction says which.
"""

from __future__ import annotations

from dataclasses import dataclass

PER_STEP = "per-step"  # every step costs the same (no cache)
FIXED = "fixed"  # full and cached steps known in advance
ADAPTIVE = "adaptive"  # skips decided by content at run time


@dataclass(frozen=True)
class LatencySchedule:
    """The step pattern of one run of ``steps`` steps under a knob. For ``fixed`` (and ``per-step``) schedules
    ``full`` lists the 0-based steps that run in full, every other step is cached; an ``adaptive`` schedule knows
    only the steps it always runs in full (``full``: warm-up, retention) and leaves the rest to ``skip_rate``."""

    kind: str
    steps: int
    full: tuple[int, ...]
    basis: str  # what the pattern rests on, in one line
    skip_rate: float | None = None  # adaptive only: fraction of the undecided steps that are cached
    skip_rate_source: str | None = None  # where skip_rate comes from ("published: ...", "user runs: ...")

    @property
    def cached(self) -> tuple[int, ...]:
        if self.kind == ADAPTIVE:
            raise ValueError("an adaptive cache decides its cached steps at run time")
        full = set(self.full)
        return tuple(i for i in range(self.steps) if i not in full)

    @property
    def is_exact(self) -> bool:
        """True when the step pattern is known before the run (no skip rate from data needed)."""
        return self.kind != ADAPTIVE

    def pattern(self) -> str:
        """``'FFFcF...'``: F a full step, c a cached one, ? one an adaptive cache decides at run time."""
        full = set(self.full)
        other = "?" if self.kind == ADAPTIVE else "c"
        return "".join("F" if i in full else other for i in range(self.steps))

    def expected_full_steps(self) -> float | None:
        """Full steps expected in the run; None for an adaptive cache with no skip rate from data."""
        if self.kind != ADAPTIVE:
            return float(len(self.full))
        if self.skip_rate is None:
            return None
        undecided = self.steps - len(self.full)
        return len(self.full) + undecided * (1.0 - self.skip_rate)

    def cost(self, full_step: float, cached_step: float, fixed: float = 0.0) -> float | None:
        """The run's cost from a measured full-step and cached-step cost; None when an adaptive cache has no skip
        rate from data (never a guessed one)."""
        n_full = self.expected_full_steps()
        if n_full is None:
            return None
        return fixed + n_full * full_step + (self.steps - n_full) * cached_step

    def with_skip_rate(self, rate: float, source: str) -> LatencySchedule:
        """This adaptive schedule with a skip rate and the data it comes from."""
        if self.kind != ADAPTIVE:
            raise ValueError("only an adaptive cache takes a skip rate from data")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"a skip rate is a fraction between 0 and 1 (got {rate})")
        return LatencySchedule(self.kind, self.steps, self.full, self.basis, rate, source)


def every_step(steps: int, basis: str = "every step alike") -> LatencySchedule:
    """The schedule of a knob that changes every step alike (or of no knob)."""
    return LatencySchedule(PER_STEP, steps, tuple(range(steps)), basis)
