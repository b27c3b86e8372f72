"""Quality scales and the published results on them, and how wide a prediction's interval is.

A scale (``SCALES``; what ``--metric`` takes) is one metric on one data set and protocol: values on different scales
are never compared. ``PublishedSeries`` holds one model's published values on one scale by step count (from
``ldmpick/data/published_quality.csv``) and predicts between them: a published point, linear interpolation in log
steps (flagged), or the last value held past the data (flagged); nothing below the fewest published steps.
``interval`` / ``IntervalFit``: a prediction's 80% interval, calibrated on held-out published points
(``ldmpick.quality.fit.interval_calibration``). Pure Python: on the ``recommend`` path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ldmpick.models.samplers import steps_text


@dataclass(frozen=True)
class Scale:
    """One quality scale: a metric on one data set and protocol. Values on different scales are never compared."""

    key: str  # what --metric takes
    label: str  # short column name ("FID", "GenEval")
    description: str
    lower_is_better: bool
    published: bool = False  # values come from the shipped published table (not the paper's law or calibration)
    # the scale whose spread across models stands in for this one's where too few models were measured on it
    # (ldmpick.quality.step_response: a step response is carried between scales in units of that spread)
    unit_from: str = ""


SCALES: dict[str, Scale] = {s.key: s for s in [
    Scale("fid", "FID", "the paper's FID (Mei et al. 2024: COCO-2014 30K, 512 px, cfg 7.5; its LDM family), or the "
          "FID of your own calibration on its data set", True),
    Scale("clip", "CLIP", "the paper's CLIP score (Mei et al. 2024 Table 1; its LDM family only)", False),
    Scale("prompt-acc", "prompt accuracy", "prompt accuracy measured by 'ldmpick calibrate' (the demo world's "
          "judge; fraction of images whose content matches the prompt)", False),
    Scale("mjhq-fid", "MJHQ FID", "FID on MJHQ-30K at 1024 px (Sana / SANA-Sprint / Playground protocol)", True, True),
    Scale("mjhq-clip", "MJHQ CLIP", "CLIP score x100 on MJHQ-30K (Sana / SANA-Sprint protocol)", False, True),
    Scale("geneval", "GenEval", "GenEval overall score (553 prompts)", False, True),
    Scale("dpg", "DPG", "DPG-Bench overall score", False, True),
    Scale("imagereward", "ImageReward", "ImageReward (Sana Tab.11 protocol)", False, True),
    Scale("coco-fid", "COCO FID", "FID on MS-COCO val2014 30K prompts, 512 px generated, FID at 256 px (BK-SDM)",
          True, True),
    Scale("coco-clip", "COCO CLIP", "CLIP score (ViT-g/14 cosine) on MS-COCO val2014 30K prompts (BK-SDM)", False,
          True),
    Scale("coco5k-fid", "COCO-5K FID", "FID on MS-COCO 2017 val 5K prompts, 512 px (ADD protocol)", True, True),
    Scale("coco5k-clip", "COCO-5K CLIP", "CLIP score (ViT-g-14 cosine) on MS-COCO 2017 val 5K (ADD)", False, True),
    Scale("coco10k-fid", "COCO-10K FID", "FID on MS-COCO 10K prompts (diffusers T-GATE benchmark)", True, True),
    Scale("laion6-fid", "LAION FID", "FID on LAION-Aesthetics-6+ (LCM paper protocol)", True, True),
    Scale("laion6-clip", "LAION CLIP", "CLIP score x100 on LAION-Aesthetics-6+ (LCM paper protocol)", False, True),
    Scale("drawbench-imagereward", "DrawBench ImageReward", "ImageReward on DrawBench prompts (FoCa protocol, arXiv "
          "2508.16211 as reproduced in cache-dit; not the Sana Tab.11 protocol of 'imagereward')", False, True,
          unit_from="imagereward"),
    Scale("drawbench-clip", "DrawBench CLIP", "CLIP score x100 on DrawBench prompts (FoCa protocol; cache-dit's own "
          "ViT-g-14 CLIP is another scale)", False, True, unit_from="mjhq-clip"),
    Scale("ras-coco-fid", "RAS COCO FID", "FID on MS-COCO val2014 prompts at 1024 px (RAS protocol, arXiv 2502.10389; "
          "sample count not stated)", True, True, unit_from="mjhq-fid"),
    Scale("ras-coco-clip", "RAS COCO CLIP", "CLIP score x100 on MS-COCO val2014 prompts at 1024 px (RAS protocol)",
          False, True, unit_from="mjhq-clip"),
]}
METRICS: tuple[str, ...] = tuple(SCALES)
CALIBRATED_METRIC = {"fid": "fid", "prompt-acc": "prompt_acc"}  # --metric -> the calibrated table's metric column


def scale_of_metric(metric: str) -> Scale:
    """The scale ``--metric`` names (a one-line error naming the valid ones otherwise): a built-in one, or a scale of
    a reference-free scorer that 'ldmpick calibrate --scorer' measured (``ldmpick.quality.scorer_scales``)."""
    try:
        return SCALES[metric]
    except (KeyError, TypeError):
        pass
    try:
        from ldmpick.quality.scorer_scales import scorer_scale  # type: ignore[import-not-found]
    except ImportError:  # (not there yet in this installation)
        scorer_scale = None
    found = scorer_scale(metric) if scorer_scale is not None and isinstance(metric, str) else None
    if found is not None:
        return found
    from ldmpick.files.errors import unknown_name

    raise unknown_name("metric", str(metric), METRICS) from None


def lower_is_better(metric: str) -> bool:
    return scale_of_metric(metric).lower_is_better


# ---------------------------------------------------------------------------------------------- intervals

INTERVAL_LEVEL = 0.8  # the stated coverage of every prediction's interval
Z_LEVEL = 1.2816  # the normal quantile of a two-sided 80% interval: sigma = half-width / Z_LEVEL
# the noise of one published FID: BK-SDM's eval-batch ablation of one model spans 16.97-17.16 (about +-0.6%);
# 1% (log) is the interval's width at a published point itself
NOISE_FLOOR_LOG = 0.01


def interval(value: float, shift: float, k: float, floor: float = NOISE_FLOOR_LOG) -> tuple[float, float, float]:
    """(low, high, sigma) of a prediction ``value`` that moved by ``shift`` (relative, >= 0) away from the data it
    rests on: a log-space half-width ``floor + k * shift``, where ``k`` was calibrated on held-out published points
    (``quality_fit.interval_calibration``)."""
    h = min(floor + k * max(shift, 0.0), 20.0)  # (a shift of thousands of percent: the interval is all values)
    if value <= 0:
        return value - abs(value) * h, value + abs(value) * h, abs(value) * h / Z_LEVEL
    low, high = value * math.exp(-h), value * math.exp(h)
    return low, high, (high - low) / 2 / Z_LEVEL


@dataclass
class IntervalFit:
    """How wide intervals are, and how often they held on published points left out of the fit."""

    k_curve: float = 1.0  # for predictions along a fitted step curve
    k_interp: float = 1.0  # for interpolation between published points of one model
    level: float = INTERVAL_LEVEL
    floor: float = NOISE_FLOOR_LOG
    coverage: dict[str, Any] = field(default_factory=dict)  # per kind: {"covered": n, "points": m, ...}

    def to_json(self) -> dict[str, Any]:
        return {"k_curve": self.k_curve, "k_interp": self.k_interp, "level": self.level, "floor": self.floor,
                "coverage": self.coverage,
                "form": "log half-width = floor + k * relative shift from the data the prediction rests on"}

    @classmethod
    def from_json(cls, d: Any) -> IntervalFit:
        out = cls(k_curve=float(d["k_curve"]), k_interp=float(d["k_interp"]), level=float(d["level"]),
                  floor=float(d["floor"]), coverage=dict(d.get("coverage", {})))
        if not all(math.isfinite(v) and v >= 0 for v in (out.k_curve, out.k_interp, out.floor)) \
                or not 0 < out.level < 1:
            raise ValueError("interval parameters must be finite, >= 0, with a level between 0 and 1")
        return out


# ---------------------------------------------------------------------------------------------- published series


@dataclass
class PublishedSeries:
    """The published values of one model on one scale from one source and protocol, by step count."""

    scale: str
    model: str  # ldmpick catalogue name ("" when not in the catalogue)
    reference_model: str
    sampler: str  # "" = not stated by the source
    steps_stated: bool
    points: list[tuple[int, float]]  # (steps, value), sorted by steps, one value per step count
    series: str
    source: str
    rows: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "model": self.model, "reference_model": self.reference_model,
                "sampler": self.sampler, "steps_stated": self.steps_stated,
                "points": [[k, v] for k, v in self.points], "series": self.series, "source": self.source}

    @classmethod
    def from_json(cls, d: Any) -> PublishedSeries:
        pts = sorted((int(k), float(v)) for k, v in d["points"])
        if not pts or any(k < 1 or not math.isfinite(v) for k, v in pts) or len({k for k, _ in pts}) != len(pts):
            raise ValueError(f"published series '{d.get('series')}' has invalid points")
        if str(d["scale"]) not in SCALES:
            raise ValueError(f"published series '{d.get('series')}' names an unknown scale '{d['scale']}'")
        return cls(scale=str(d["scale"]), model=str(d["model"]), reference_model=str(d["reference_model"]),
                   sampler=str(d["sampler"]), steps_stated=bool(d["steps_stated"]), points=pts,
                   series=str(d["series"]), source=str(d["source"]))

    def fits(self, sampler: str) -> bool:
        return self.sampler in ("", sampler)

    def predict(self, steps: int, k_interp: float, floor: float = NOISE_FLOOR_LOG) -> tuple[float, float, float,
                                                                                             float, str, list[str]]:
        """(value, low, high, sigma, basis, flags) at ``steps``: a published point itself, linear interpolation in
        log steps between the two published points around it, or the last published value held past the largest
        step count (flagged). Raises ValueError below the smallest published step count: no extrapolation."""
        flags = [] if self.steps_stated else [f"the source does not state its step count; taken as the pipeline "
                                              f"default ({self.points[-1][0]})"]
        if not self.sampler:
            flags.append("the source does not state its sampler")
        first, last = self.points[0], self.points[-1]
        if steps < first[0]:
            raise ValueError(f"below the fewest published steps ({first[0]})")
        if steps >= last[0]:
            if steps > last[0]:
                flags.append(f"held at its value at {steps_text(last[0])}: no published data past {steps_text(last[0])}")
            low, high, sigma = interval(last[1], 0.0, k_interp, floor)
            return last[1], low, high, sigma, "published" if steps == last[0] else "published-held", flags
        for (k0, v0), (k1, v1) in zip(self.points, self.points[1:]):
            if k0 == steps:
                low, high, sigma = interval(v0, 0.0, k_interp, floor)
                return v0, low, high, sigma, "published", flags
            if k0 < steps < k1:
                w = (math.log(steps) - math.log(k0)) / (math.log(k1) - math.log(k0))
                value = v0 + (v1 - v0) * w
                shift = abs(v1 - v0) / max(abs(value), 1e-12)
                low, high, sigma = interval(value, shift, k_interp, floor)
                flags.append(f"interpolated between {k0} and {k1} steps")
                return value, low, high, sigma, "published-interpolated", flags
        raise ValueError("unreachable")  # steps lies in [first, last)


def series_from_points(points: list[Any]) -> list[PublishedSeries]:
    """Group published table rows (``quality_table.PublishedPoint``) into series; values published twice for one
    step count in one series are averaged."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for p in points:
        groups.setdefault((p.scale, p.series), []).append(p)
    out = []
    for (scale, series), pts in groups.items():
        by_steps: dict[int, list[float]] = {}
        for p in pts:
            by_steps.setdefault(p.steps, []).append(p.value)
        out.append(PublishedSeries(scale=scale, model=pts[0].model, reference_model=pts[0].reference_model,
                                   sampler=pts[0].sampler, steps_stated=all(p.steps_stated for p in pts),
                                   points=sorted((k, sum(v) / len(v)) for k, v in by_steps.items()),
                                   series=series, source=pts[0].source))
    return out
