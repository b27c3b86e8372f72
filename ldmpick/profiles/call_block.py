"""A profile's measurement of a model's own pipeline call (schema ``ldmpick.profile/3``; absent in older files).

The parts of a profile (one denoiser evaluation, one sampler step, the text-encoder stack, the VAE decode) leave
out what the pipeline's ``__call__`` does around them: CFG concatenation and split, input scaling, callbacks, set-up
and post-processing, and, for the first call of a process, its warm-up. ``PipelineCall`` holds what
``ldmpick.measurement.pipeline_call`` measured of the call itself, for models with weights: the wall time of warm
calls at two step counts (the slope between them is the loop's true per-step cost), and the first and second call of
each of several fresh processes (the first image of a run, and the run-to-run spread across processes). Every
series keeps its raw samples; ``ldmpick.costs.latency`` predicts from them.

Torch-free: on the ``recommend`` path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ldmpick.files.errors import ProfileError
from ldmpick.profiles.fields import MAX_NAME_CHARS, integer, label, nonneg, obj
from ldmpick.profiles.latency_stats import LatencyStats, _quantile

MAX_STEP_COUNT = 10_000
MAX_ERRORS = 16


@dataclass
class CallSeries:
    """The wall time of calls at one step count (``LatencyStats``, raw samples kept) and the median of each part."""

    steps: int
    wall: Any  # LatencyStats
    text_encoder_ms: float = 0.0
    denoise_ms: float = 0.0
    vae_decode_ms: float = 0.0
    evals: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "wall": self.wall.to_json(), "text_encoder_ms": round(self.text_encoder_ms, 4),
                "denoise_ms": round(self.denoise_ms, 4), "vae_decode_ms": round(self.vae_decode_ms, 4),
                "evals": self.evals}

    @classmethod
    def from_json(cls, data: Any, where: str) -> CallSeries:
        d = obj(data, where)
        return cls(steps=integer(d, "steps", where, minimum=1, maximum=MAX_STEP_COUNT),
                   wall=LatencyStats.from_json(d.get("wall"), f"{where}.wall"),
                   text_encoder_ms=nonneg(d, "text_encoder_ms", where), denoise_ms=nonneg(d, "denoise_ms", where),
                   vae_decode_ms=nonneg(d, "vae_decode_ms", where),
                   evals=integer(d, "evals", where, minimum=0, maximum=16 * MAX_STEP_COUNT))

    @classmethod
    def of(cls, samples: list[Any]) -> CallSeries:
        """From ``CallSample``\\ s of one step count."""
        def median(key: str) -> float:
            return _quantile(sorted(getattr(s, key) for s in samples), 0.5)

        return cls(steps=samples[0].steps, wall=LatencyStats.from_samples([s.wall_ms for s in samples]),
                   text_encoder_ms=median("text_encoder_ms"), denoise_ms=median("denoise_ms"),
                   vae_decode_ms=median("vae_decode_ms"), evals=samples[0].evals)


@dataclass
class PipelineCall:
    """One model's pipeline call, measured end to end: warm calls at two step counts in the profiling process
    (``warm``), and the first and second call of each fresh process (``first``, ``second``: sample ``i`` of both
    is process ``i``), at the higher step count."""

    sampler: str  # the ldmpick sampler the calls ran
    guidance: float
    prompt: str
    warm: list[CallSeries]  # two step counts, lower first
    first: CallSeries | None = None
    second: CallSeries | None = None
    errors: list[str] = field(default_factory=list)  # fresh processes that failed, one line each

    @property
    def processes(self) -> int:
        return self.first.wall.n if self.first is not None else 0

    def to_json(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "guidance": self.guidance, "prompt": self.prompt,
                "warm": [w.to_json() for w in self.warm],
                "first": self.first.to_json() if self.first else None,
                "second": self.second.to_json() if self.second else None, "errors": self.errors}

    @classmethod
    def from_json(cls, data: Any, where: str) -> PipelineCall:
        d = obj(data, where)
        warm_raw = d.get("warm")
        if not isinstance(warm_raw, list) or len(warm_raw) != 2:
            raise ProfileError(f"{where}.warm must list the calls at two step counts")
        warm = [CallSeries.from_json(w, f"{where}.warm[{i}]") for i, w in enumerate(warm_raw)]
        if warm[0].steps >= warm[1].steps:
            raise ProfileError(f"{where}.warm: the two step counts must differ, the lower first")
        fresh = {k: CallSeries.from_json(d[k], f"{where}.{k}") if d.get(k) is not None else None
                 for k in ("first", "second")}
        first, second = fresh["first"], fresh["second"]
        if (first is None) != (second is None) or (first is not None and second is not None and (
                first.wall.n != second.wall.n or first.steps != second.steps)):
            raise ProfileError(f"{where}: first and second must both be there, one sample per fresh process each, "
                               "at one step count")
        errors = d.get("errors", [])
        if not isinstance(errors, list) or len(errors) > MAX_ERRORS or not all(isinstance(e, str) for e in errors):
            raise ProfileError(f"{where}.errors must be a list of at most {MAX_ERRORS} strings")
        guidance = nonneg(d, "guidance", where)
        prompt = label(d, "prompt", where, 4000)
        assert prompt is not None
        return cls(sampler=label(d, "sampler", where, MAX_NAME_CHARS) or "", guidance=guidance, prompt=prompt,
                   warm=warm, first=first, second=second, errors=[e[:400] for e in errors])


def pipeline_call_of(measured: Any) -> PipelineCall:
    """The profile block of a ``measurement.pipeline_call.CallMeasurement``."""
    req = measured.request
    warm = [CallSeries.of([s for s in measured.warm if s.steps == k]) for k in req.steps]
    first = CallSeries.of(measured.first) if measured.first else None
    second = CallSeries.of(measured.second) if measured.second else None
    return PipelineCall(sampler=req.sampler, guidance=req.guidance, prompt=req.prompt, warm=warm, first=first,
                        second=second, errors=[" ".join(e.split())[:400] for e in measured.fresh_errors][:MAX_ERRORS])
