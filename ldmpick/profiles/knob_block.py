"""A profile's measured knob variants of one model (schema ``ldmpick.profile/4``; absent in older files).

``profile --knobs "SET;SET"`` measures, after a model's plain denoiser step, the same denoiser (random weights, the
profile's batch and resolution) under each knob list that applies to it. One ``KnobVariant`` per list:

- ``knobs``: the list's canonical text (``ldmpick.knobs.format_knobs``), changes against the profile's own
  settings (a list without a precision or compile knob runs in the profile's dtype and mode);
- ``denoiser_step``: a full step with those knobs; ``cached_step``: a step a fixed-schedule cache served from its
  cache (null for the other schedules);
- ``schedule``: ``every-step`` (precision, compile, attention), ``fixed`` (TaylorSeer, PAB, FasterCache: the steps
  are classified with the knob's own schedule) or ``adaptive`` (FBCache, MagCache: a full step only, its skip rate
  must come from data);
- ``compile_ms``: a one-off compile or capture time (a cold-start cost, never added to a step), or null;
- ``pattern`` and ``runs``: for a fixed schedule, the step pattern of each timed run (``F`` full, ``c`` cached) and
  how many runs were timed, so that the step counts are checkable against the samples.

Torch-free and independent of ``ldmpick.knobs`` (a sibling layer): the text is checked as a label here, parsed by
the commands that use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ldmpick.files.errors import ProfileError
from ldmpick.profiles.fields import check_latency, choice, integer, label, obj
from ldmpick.profiles.latency_stats import LatencyStats

EVERY_STEP = "every-step"
FIXED = "fixed"
ADAPTIVE = "adaptive"
SCHEDULES = (EVERY_STEP, FIXED, ADAPTIVE)
MAX_VARIANTS = 32  # knob variants per model
MAX_KNOBS_CHARS = 400  # as ldmpick.knobs.MAX_KNOBS_CHARS
MAX_NOTES_CHARS = 2000
MAX_PATTERN = 1000


@dataclass
class KnobVariant:
    """One knob list measured on one model's denoiser."""

    knobs: str
    denoiser_step: LatencyStats
    schedule: str = EVERY_STEP
    cached_step: LatencyStats | None = None
    compile_ms: float | None = None
    notes: str = ""
    pattern: str | None = None  # fixed schedule: the timed run's steps, F full and c cached
    runs: int = 0  # fixed schedule: how many runs of ``pattern`` were timed

    def to_json(self) -> dict[str, Any]:
        return {"knobs": self.knobs, "schedule": self.schedule, "denoiser_step": self.denoiser_step.to_json(),
                "cached_step": self.cached_step.to_json() if self.cached_step else None,
                "compile_ms": None if self.compile_ms is None else round(self.compile_ms, 3), "notes": self.notes,
                "pattern": self.pattern, "runs": self.runs}

    @classmethod
    def from_json(cls, data: Any, where: str) -> KnobVariant:
        d = obj(data, where)
        knobs = label(d, "knobs", where, MAX_KNOBS_CHARS)
        assert knobs is not None
        schedule = choice(d, "schedule", SCHEDULES, where)
        step = LatencyStats.from_json(d.get("denoiser_step"), f"{where}.denoiser_step")
        cached = d.get("cached_step")
        if (cached is not None) != (schedule == FIXED):
            raise ProfileError(f"{where}: a cached_step is measured exactly for a fixed schedule (schedule "
                               f"'{schedule}' with{'' if cached is not None else 'out'} one)")
        compile_ms = d.get("compile_ms")
        pattern = d.get("pattern")
        runs = integer(d, "runs", where, minimum=0, maximum=1_000_000) if "runs" in d else 0
        if schedule == FIXED:
            if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN or set(pattern) - {"F", "c"}:
                raise ProfileError(f"{where}.pattern must be the timed run's steps as F (full) and c (cached)")
            if runs < 1:
                raise ProfileError(f"{where}.runs must be at least 1 for a fixed schedule")
        elif pattern is not None:
            raise ProfileError(f"{where}.pattern is for a fixed schedule only")
        return cls(knobs=knobs, denoiser_step=step, schedule=schedule,
                   cached_step=LatencyStats.from_json(cached, f"{where}.cached_step") if cached is not None else None,
                   compile_ms=check_latency(compile_ms, f"{where}.compile_ms") if compile_ms is not None else None,
                   notes=label(d, "notes", where, MAX_NOTES_CHARS, optional=True) or "", pattern=pattern, runs=runs)


def knob_variants_of(data: Any, where: str) -> list[KnobVariant]:
    """A model's ``knobs`` list: at most ``MAX_VARIANTS`` variants, each knob text once."""
    if not isinstance(data, list) or len(data) > MAX_VARIANTS:
        raise ProfileError(f"{where} must be a list of at most {MAX_VARIANTS} knob variants")
    variants = [KnobVariant.from_json(v, f"{where}[{i}]") for i, v in enumerate(data)]
    texts = [v.knobs for v in variants]
    if len(set(texts)) != len(texts):
        raise ProfileError(f"{where}: a knob list is measured twice")
    return variants
