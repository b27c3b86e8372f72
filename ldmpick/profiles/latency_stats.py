"""One measured thing's timings: ``LatencyStats`` (median, p10, p90, IQR, mean, min, max, n and the raw samples, in
milliseconds), as profiles keep them; parsed with one-line ``ProfileError``\ s. Torch-free (the ``recommend`` path)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ldmpick.files.errors import ProfileError
from ldmpick.profiles.fields import check_latency, integer, nonneg, obj

MAX_SAMPLES = 10_000  # raw samples per measurement (profile --repeats is capped to it)


@dataclass
class LatencyStats:
    """Summary of repeated timings of one thing, in milliseconds, with the raw samples kept."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    n: int
    samples_ms: list[float] = field(default_factory=list)

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no samples")
        xs = sorted(float(x) for x in samples_ms)
        return cls(
            median_ms=_quantile(xs, 0.5),
            p10_ms=_quantile(xs, 0.1),
            p90_ms=_quantile(xs, 0.9),
            iqr_ms=_quantile(xs, 0.75) - _quantile(xs, 0.25),
            mean_ms=sum(xs) / len(xs),
            min_ms=xs[0],
            max_ms=xs[-1],
            n=len(xs),
            samples_ms=[round(x, 6) for x in samples_ms],
        )

    def at(self, percentile: float) -> float:
        """Latency at ``percentile`` (50 = median, 90 = p90), from the raw samples when present."""
        if percentile == 50:
            return self.median_ms
        if self.samples_ms:
            return _quantile(sorted(self.samples_ms), percentile / 100.0)
        if percentile == 90:
            return self.p90_ms
        if percentile == 10:
            return self.p10_ms
        raise ProfileError(f"percentile {percentile} needs raw samples, which this profile lacks")

    @property
    def relative_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "median_ms": round(self.median_ms, 6),
            "p10_ms": round(self.p10_ms, 6),
            "p90_ms": round(self.p90_ms, 6),
            "iqr_ms": round(self.iqr_ms, 6),
            "mean_ms": round(self.mean_ms, 6),
            "min_ms": round(self.min_ms, 6),
            "max_ms": round(self.max_ms, 6),
            "n": self.n,
            "samples_ms": self.samples_ms,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> LatencyStats:
        d = obj(data, where)
        vals = {k: nonneg(d, k, where) for k in ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "mean_ms", "min_ms", "max_ms")}
        n = integer(d, "n", where, minimum=1)
        samples = d.get("samples_ms", [])
        if not isinstance(samples, list) or len(samples) > MAX_SAMPLES:
            raise ProfileError(f"{where}.samples_ms must be a list of at most {MAX_SAMPLES} numbers")
        for i, x in enumerate(samples):
            check_latency(x, f"{where}.samples_ms[{i}]")
        if not vals["min_ms"] <= vals["p10_ms"] <= vals["median_ms"] <= vals["p90_ms"] <= vals["max_ms"]:
            raise ProfileError(f"{where}: min <= p10 <= median <= p90 <= max does not hold")
        if samples:  # the summary and the samples must tell one story: show and plan use the one, p90 the other
            own = cls.from_samples([float(x) for x in samples])
            if n != len(samples):
                raise ProfileError(f"{where}.n is {n} but it holds {len(samples)} samples_ms; the file was edited: "
                                   "fix the summary, or drop samples_ms")
            for k in ("median_ms", "p10_ms", "p90_ms", "min_ms", "max_ms", "mean_ms", "iqr_ms"):
                if abs(getattr(own, k) - vals[k]) > 1e-3 + 1e-3 * abs(getattr(own, k)):
                    raise ProfileError(f"{where}.{k} is {vals[k]:g} but its samples_ms say {getattr(own, k):g}; "
                                       "the file was edited: fix the summary, or drop samples_ms")
        return cls(**vals, n=n, samples_ms=[float(x) for x in samples])


def _quantile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)
