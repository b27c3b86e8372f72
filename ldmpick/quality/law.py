"""The quality law: what a model, sampler and step count score on one quality scale, with an honest interval.

Scales (``quality_scales.SCALES``; ``--metric``) are never mixed: a model is predicted on a scale only where that scale has data
for it, never from its parameter count.

- The paper's FID (``fid``) for its own LDM family: ``FID(N, s; sampler) = size(N) + deficit_sampler(s) -
  deficit_ddim(50)``, where ``size(N)`` is Mei et al. 2024 Table 1 (interpolated in log N between its sizes, nothing
  outside them) and ``deficit(s) = C s^-p`` is fitted per sampler to published SD step curves (each series with its
  own converged offset). Past the most steps of the published points a curve rests on, the value is held (flagged).
  A model with its own anchor (a published or calibrated FID) is predicted relative to it; a model with your
  calibration (``ldmpick calibrate``) from the law fitted to it (``CalibratedFamily``), on its own data set's scale.
- Published scales (``mjhq-fid``, ``geneval``, ...): the published values of released models
  (``ldmpick/data/published_quality.csv``), interpolated linearly in log steps between published step counts
  (flagged), held past the last one (flagged), absent below the first.
- Below a model's published step counts (or with another sampler than its published one): its published point
  moved along a step response (``ldmpick.quality.step_response``: its own calibrated response, its own sweeps on
  another scale, or the sweeps of other models of its kind), basis ``transferred`` / ``calibrated-response``,
  saying which; never below the fewest steps of the sweeps that response rests on.
- Intervals: ``log half-width = floor + k * relative shift`` from the data a prediction rests on, with ``k``
  calibrated so that published points left out of the fit fall inside at the stated rate (``IntervalFit``).

Evaluation is pure Python (no numpy, scipy or torch): it is on the ``recommend`` path. Scales, published series and
intervals live in ``ldmpick.quality.scales``, fitting in ``ldmpick.quality.fit`` (the only scipy importer of the
quality modules), the rows in ``ldmpick.quality.table``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick import PACKAGE_DIR
from ldmpick.files.errors import LdmpickError, UsageError
from ldmpick.models.samplers import steps_text
from ldmpick.quality.scales import (CALIBRATED_METRIC, INTERVAL_LEVEL, Z_LEVEL, IntervalFit, PublishedSeries, interval,
                                    scale_of_metric)
from ldmpick.quality.step_response import BelowSweeps, StepResponses

SCHEMA = "ldmpick.law/1"
REFERENCE_SAMPLER = "ddim"
REFERENCE_STEPS = 50
PARAM_SCALE = 1e8

# The paper's normalized sampling cost per step (GFLOPs relative to the 866M model), Mei et al. 2024 Table 1.
PAPER_NORM_COST: dict[str, float] = {
    "ldm-39m": 0.07, "ldm-83m": 0.13, "ldm-145m": 0.20, "ldm-223m": 0.30, "ldm-318m": 0.40, "ldm-430m": 0.53,
    "ldm-558m": 0.67, "ldm-704m": 0.83, "ldm-866m": 1.00, "ldm-2b": 2.39, "ldm-5b": 5.17,
}
PAPER_CITATION = "Mei et al. 2024, Bigger is not Always Better, arXiv 2404.01367, Table 1"

DISTILLED_SAMPLERS = ("lcm",)


def calibrated_metric(metric: str) -> str | None:
    """The quality table's metric that ``--metric`` is calibrated in: ``fid``, ``prompt_acc``, or a reference-free
    scorer's scale key itself (``quality.scorer_scales``: one scale per scorer, prompt set and resolution); None for
    a scale nothing calibrates (the paper's CLIP, the published ones)."""
    if metric in CALIBRATED_METRIC:
        return CALIBRATED_METRIC[metric]
    return metric if _scorer_range(metric) is not None else None


def error_ceiling(metric: str) -> float | None:
    """A calibrated metric where higher is better is fitted as the error ``ceiling - value`` (prompt accuracy:
    1 - accuracy; a scorer scale: its largest value - value); None for FID, fitted as it is."""
    if metric == "prompt_acc":
        return 1.0
    found = _scorer_range(metric)
    return None if found is None else found[1]


def _scorer_range(metric: str) -> tuple[float, float] | None:
    try:
        from ldmpick.quality.scorer_scales import scorer_value_range
    except ImportError:  # (an installation without scorer scales)
        return None
    return scorer_value_range(metric) if isinstance(metric, str) else None


@dataclass
class StepCurve:
    """deficit(s) = C * s^-p, with the covariance of (C, p) from the fit."""

    C: float
    p: float
    cov: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0], [0.0, 0.0]])
    basis: str = "fitted"
    points: int = 0
    max_steps: int = 0  # the most steps of the published points its shape comes from (0: not recorded)
    guidance_factors: dict[str, float] = field(default_factory=dict)  # relative curves: factor per guidance scale

    def deficit(self, steps: float) -> float:
        return self.C * steps ** (-self.p)

    def deficit_sigma(self, steps: float) -> float:
        """Delta-method standard deviation of the deficit at ``steps``."""
        d = self.deficit(steps)
        g0, g1 = (d / self.C if self.C else 0.0), -d * math.log(steps)  # d/dC, d/dp
        (a, b), (c, e) = self.cov
        return math.sqrt(max(g0 * g0 * a + g0 * g1 * (b + c) + g1 * g1 * e, 0.0))

    def to_json(self) -> dict[str, Any]:
        d = {"C": self.C, "p": self.p, "cov": self.cov, "basis": self.basis, "points": self.points,
             "max_steps": self.max_steps}
        if self.guidance_factors:
            d["guidance_factors"] = self.guidance_factors
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepCurve:
        cov = [[float(x) for x in r] for r in d["cov"]]
        if len(cov) != 2 or any(len(r) != 2 for r in cov):
            raise ValueError("a step curve's covariance must be 2 x 2")
        return cls(C=float(d["C"]), p=float(d["p"]), cov=cov,
                   basis=str(d.get("basis", "fitted")), points=int(d.get("points", 0)),
                   max_steps=int(d.get("max_steps", 0)),
                   guidance_factors={str(k): float(v) for k, v in d.get("guidance_factors", {}).items()})


@dataclass
class Anchor:
    """A measured quality point of one named model that predictions are made relative to."""

    model: str
    sampler: str
    steps: int
    fid: float
    source: str
    dataset: str = ""


@dataclass
class CalibratedFamily:
    """The law's form fitted to one calibrated data set (``ldmpick calibrate``) of models measured with the same
    metric and protocol:  ``value(m, sampler, s) = floor_m + k_m * C_sampler * s^-p_sampler``.

    ``floor_m`` is model m's converged value (the size term, one per model), ``C, p`` the sampler's step deficit
    (shared by the models), ``k_m`` how much more (or less) model m suffers from few steps than the first model
    (k = 1 for it). Fitted in log space by bounded least squares. For ``metric == "prompt_acc"`` (higher is better) the
    law is fitted to the error ``1 - accuracy`` and predictions are turned back into accuracies."""

    dataset: str
    metric: str  # "fid", "prompt_acc" or a scorer scale's key (``calibrated_metric``)
    guidance: float | None  # the guidance scale the points were measured at
    floors: dict[str, float]
    scales: dict[str, float]
    curves: dict[str, StepCurve]
    rms_log: float  # residual RMS of log(value): the relative error of a prediction
    points: int
    source: str
    residuals: list[dict[str, Any]] = field(default_factory=list)
    samples: int | None = None  # images per measurement (FID's bias depends on it)
    origin: str = "yours"  # "shipped" (the shipped table's points only) or "yours"

    @property
    def scale(self) -> str:
        """What its values are comparable with: same data set, guidance and sample count."""
        g = "" if self.guidance is None else f", guidance {self.guidance:g}"
        n = "" if self.samples is None else f", {self.samples} samples"
        return f"{self.dataset}{g}{n} ({self.origin})"

    def max_steps(self, model: str, sampler: str) -> int | None:
        """The most steps measured for (model, sampler): beyond it the fitted form is extrapolation."""
        steps = [int(r["steps"]) for r in self.residuals if r["model"] == model and r["sampler"] == sampler]
        return max(steps) if steps else None

    def covers(self, model: str, sampler: str) -> bool:
        return model in self.floors and sampler in self.curves

    def predict(self, model: str, sampler: str, steps: int) -> tuple[float, float]:
        """The fitted form, corrected by its measured residuals: where (model, sampler) was measured, the log
        ratio measured/fitted is interpolated linearly in log steps (held constant beyond the measured range), so
        a prediction equals the measurement at measured steps and follows the form's shape in between. This keeps
        what the form cannot express (an under-trained model that gets worse with many steps) out of the choice."""
        c = self.curves[sampler]
        v = self.floors[model] + self.scales[model] * c.deficit(steps)
        v *= math.exp(self._residual(model, sampler, steps))
        sigma = math.hypot(v * self.rms_log, self.scales[model] * c.deficit_sigma(steps))
        ceiling = error_ceiling(self.metric)
        if ceiling is not None:
            return ceiling - v, sigma
        return v, sigma

    def _residual(self, model: str, sampler: str, steps: int) -> float:
        cache = self.__dict__.setdefault("_residual_cache", {})
        key = (model, sampler)
        if key not in cache:
            pts = []
            for r in self.residuals:
                if r["model"] == model and r["sampler"] == sampler:
                    meas, fit = float(r["measured"]), float(r["fitted"])
                    ceiling = error_ceiling(self.metric)
                    if ceiling is not None:
                        meas, fit = ceiling - meas, ceiling - fit
                    if meas > 0 and fit > 0:
                        pts.append((math.log(int(r["steps"])), math.log(meas / fit)))
            cache[key] = sorted(pts)
        pts = cache[key]
        if not pts:
            return 0.0
        x = math.log(steps)
        if x <= pts[0][0]:
            return pts[0][1]
        if x >= pts[-1][0]:
            return pts[-1][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= x <= x1:
                return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return 0.0  # unreachable

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "metric": self.metric, "guidance": self.guidance, "floors": self.floors, "scales": self.scales,
                "curves": {k: v.to_json() for k, v in self.curves.items()}, "rms_log": self.rms_log,
                "points": self.points, "source": self.source, "residuals": self.residuals,
                "samples": self.samples, "origin": self.origin,
                "form": "floor_m + k_m * C_sampler * steps^-p_sampler" + (
                    "" if error_ceiling(self.metric) is None else f" (of {error_ceiling(self.metric):g} - value)")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CalibratedFamily:
        g = d.get("guidance")
        fam = cls(dataset=str(d["dataset"]), metric=str(d["metric"]), guidance=None if g is None else float(g),
                  floors={str(k): float(v) for k, v in d["floors"].items()},
                  scales={str(k): float(v) for k, v in d["scales"].items()},
                  curves={str(k): StepCurve.from_json(v) for k, v in d["curves"].items()},
                  rms_log=float(d["rms_log"]), points=int(d["points"]), source=str(d.get("source", "")),
                  residuals=list(d.get("residuals", [])),
                  samples=None if d.get("samples") is None else int(d["samples"]),
                  origin=str(d.get("origin", "yours")))
        values = list(fam.floors.values()) + list(fam.scales.values()) + [fam.rms_log]
        for c in fam.curves.values():
            values += [c.C, c.p] + [x for row in c.cov for x in row]
        if fam.guidance is not None:
            values.append(fam.guidance)
        if (fam.metric not in ("fid", "prompt_acc", calibrated_metric(fam.metric)) or not fam.floors or not fam.curves
                or set(fam.floors) != set(fam.scales) or not all(math.isfinite(v) for v in values)
                or any(v < 0 for v in list(fam.floors.values()) + list(fam.scales.values()) + [fam.rms_log])
                or any(len(c.cov) != 2 or any(len(r) != 2 for r in c.cov) or c.C < 0 or c.p <= 0
                       for c in fam.curves.values())):
            raise ValueError(f"calibrated family '{fam.dataset}' has invalid parameters")
        for r in fam.residuals:
            if not (isinstance(r, dict) and isinstance(r.get("model"), str) and isinstance(r.get("sampler"), str)
                    and isinstance(r.get("steps"), int) and r["steps"] >= 1
                    and all(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) for k in ("measured", "fitted"))):
                raise ValueError(f"calibrated family '{fam.dataset}' has an invalid residual row")
        return fam


@dataclass
class Prediction:
    """A predicted quality value with its interval (``low``..``high`` at ``level``; ``sigma`` is the normal-equivalent
    spread of that interval), what it rests on, and flags (held past the data, steps not stated, ...)."""

    value: float
    sigma: float
    basis: str  # "table1", "interpolated", "anchor", "calibrated:<dataset>", "published", "published-interpolated",
    # "published-held", "transferred", "calibrated-response"
    low: float | None = None
    high: float | None = None
    level: float = INTERVAL_LEVEL
    rows: list[str] = field(default_factory=list)  # the data rows the value rests on
    flags: list[str] = field(default_factory=list)
    scale: str = ""
    detail: str = ""  # what a transferred value rests on ("transferred from ...", "calibrated step response ...")

    def to_json(self) -> dict[str, Any]:
        doc = {"value": self.value, "interval": [self.low, self.high], "level": self.level, "sigma": self.sigma,
               "scale": self.scale, "basis": self.basis, "rows": self.rows, "flags": self.flags}
        if self.detail:
            doc["basis_detail"] = self.detail
        return doc


@dataclass
class QualityLaw:
    """The fitted law. JSON-serialisable (``ldmpick.law/1``) with provenance."""

    size_points: list[tuple[str, int, float]]  # (name, unet_params, FID at 50 DDIM steps), sorted by params
    smooth_a: float
    smooth_b: float
    smooth_cov: list[list[float]]
    smooth_rms: float
    curves: dict[str, StepCurve]
    clip_points: list[tuple[str, int, float]]
    clip_per_fid: float  # CLIP change per FID unit along steps (assumption, see docs)
    anchors: dict[str, Anchor]
    norm_cost: dict[str, float]
    provenance: dict[str, Any]
    calibrated: list[CalibratedFamily] = field(default_factory=list)
    published: list[PublishedSeries] = field(default_factory=list)
    intervals: IntervalFit = field(default_factory=IntervalFit)
    responses: StepResponses | None = None  # step responses (laws fitted before they existed have none)

    # ------------------------------------------------------------------ prediction
    def predict(self, model: str, sampler: str, steps: int, metric: str = "fid") -> Prediction | None:
        """The one prediction query: ``model`` run with ``sampler`` for ``steps`` on ``metric``'s scale, with its
        interval and basis; None when that scale has no data for the model (and sampler). A model is never placed
        on a scale by its parameter count."""
        scale = scale_of_metric(metric)
        if steps < 1:
            raise UsageError(f"steps must be at least 1 (got {steps})")
        if scale.published:
            series = self.published_series(model, sampler, metric)
            if series is not None:
                try:
                    value, low, high, sigma, basis, flags = series.predict(steps, self.intervals.k_interp,
                                                                           self.intervals.floor)
                except ValueError:
                    pass  # fewer steps than any published point: moved along a step response, if one fits
                else:
                    rows = [f"{series.reference_model}, {k} steps: {v:g}" for k, v in series.points]
                    return Prediction(value, sigma, basis, low, high, self.intervals.level,
                                      rows=rows + [f"series: {series.series}", f"source: {series.source}"],
                                      flags=flags, scale=scale.description)
            try:
                return self.transferred(model, sampler, steps, metric)
            except BelowSweeps:
                return None
        if self.quality_basis(model, sampler, metric) is None:
            return None
        if metric not in ("fid", "clip"):  # prompt accuracy, a scorer's scale: measured by calibration only
            fam = self.calibrated_for(model, sampler, calibrated_metric(metric) or "")
            assert fam is not None  # quality_basis said so
            value, sigma = fam.predict(model, sampler, steps)
            pred = Prediction(value, sigma, f"calibrated:{fam.dataset}", value - Z_LEVEL * sigma,
                              value + Z_LEVEL * sigma, rows=[f"calibration: {fam.source}"])
        else:
            params = {name: n for name, n, _ in (self.size_points if metric == "fid" else self.clip_points)}
            n = params.get(model, 0)
            pred = (self.predict_fid(n, sampler, steps, model=model) if metric == "fid"
                    else self.predict_clip(n, sampler, steps, model=model))
        pred.scale = self.scale_of(model, metric)
        if not all(math.isfinite(v) for v in (pred.value, pred.sigma)):
            raise UsageError(f"the quality law gives no finite value for {model} with {sampler} at {steps_text(steps)}; "
                             "refit it with 'ldmpick fit'")
        return pred

    def anchor_series(self, model: str, sampler: str, metric: str) -> PublishedSeries | None:
        """The published series a transferred prediction starts from: the one ``published_series`` picks, else
        the model's series on the scale with another sampler (the converged quality is the model's, not the
        sampler's: the step response of each sampler's order is applied)."""
        series = self.published_series(model, sampler, metric)
        if series is not None:
            return series
        found = [(i, s) for i, s in enumerate(self.published) if s.scale == metric and s.model == model and model]
        return max(found, key=lambda t: (t[1].steps_stated, len(t[1].points), -t[0]))[1] if found else None

    def transferred(self, model: str, sampler: str, steps: int, metric: str) -> Prediction | None:
        """``model``'s published point on ``metric``'s scale moved along a step response to ``steps`` with
        ``sampler`` (``StepResponses.transfer``); None without a published point or a fitting response; raises
        ``BelowSweeps`` below the fewest steps the response rests on."""
        if self.responses is None:
            return None
        series = self.anchor_series(model, sampler, metric)
        if series is None:
            return None
        k0, v0 = min(series.points, key=lambda t: (abs(math.log(t[0] / steps)), -t[0]))
        anchor_sampler = series.sampler or sampler
        t = self.responses.transfer(model, sampler, steps, metric, k0, v0, anchor_sampler)
        if t is None:
            return None
        flags = [t.detail] + t.flags
        if not series.steps_stated:
            flags.append(f"the source does not state its step count; taken as the pipeline default ({k0})")
        if not series.sampler:
            flags.append("the source does not state its sampler")
        elif series.sampler != sampler:
            flags.append(f"published with {series.sampler}: its converged quality, with {sampler}'s step response")
        rows = [f"anchor: {series.reference_model}, {k0} steps: {v0:g}", f"series: {series.series}",
                f"source: {series.source}", t.detail]
        if k0 == steps and abs(t.value - v0) <= 1e-12 * max(1.0, abs(v0)):  # the published point itself
            low, high, sigma = interval(v0, 0.0, self.intervals.k_interp, self.intervals.floor)
            return Prediction(v0, sigma, "published", low, high, self.intervals.level, rows=rows[:3],
                              flags=flags[1:], scale=scale_of_metric(metric).description)
        return Prediction(t.value, t.sigma, t.basis, t.low, t.high, self.intervals.level, rows=rows, flags=flags,
                          scale=scale_of_metric(metric).description, detail=t.detail)

    def why_no_prediction(self, model: str, sampler: str, steps: int, metric: str) -> str | None:
        """Why a published scale has no value for the model at ``steps`` though it has a point of it: below the
        fewest steps of the sweeps its step response rests on (or of its published points, without a response)."""
        series = self.anchor_series(model, sampler, metric)
        if series is None:
            return None
        try:
            if self.transferred(model, sampler, steps, metric) is None:
                first = series.points[0][0]
                return f"published from {first} steps here (no extrapolation)" if steps < first else None
        except BelowSweeps as exc:
            return f"{exc}: no extrapolation"
        return None

    def published_series(self, model: str, sampler: str, metric: str) -> PublishedSeries | None:
        """The published series ``model`` is predicted from on ``metric``'s scale: stated step counts first, then the
        stated sampler, then the most points, then the first in the table."""
        cache = self.__dict__.setdefault("_series_cache", {})
        key = (model, sampler, metric)
        if key not in cache:
            found = [(i, s) for i, s in enumerate(self.published)
                     if s.scale == metric and s.model and s.model == model and s.fits(sampler)]
            cache[key] = max(found, key=lambda t: (t[1].steps_stated, t[1].sampler == sampler, len(t[1].points),
                                                   -t[0]))[1] if found else None
        return cache[key]

    def calibrated_for(self, model: str | None, sampler: str, metric: str) -> CalibratedFamily | None:
        """The calibrated family ``model`` is predicted from (your own calibration first, then the one with the most
        points), if it measured ``sampler``; else None. ``metric`` is the table's metric (fid, prompt_acc)."""
        if model is None:
            return None
        fams = [f for f in self.calibrated if f.metric == metric and model in f.floors]
        if not fams:
            return None
        fam = max(fams, key=lambda f: (f.origin == "yours", f.points))  # your own data first, then the largest
        return fam if sampler in fam.curves else None

    def scale_of(self, model: str, metric: str = "fid") -> str:
        """What a model's predictions are measured in: its calibrated data set (with guidance and sample count),
        an anchor's data set, the paper's scale, or a published scale."""
        scale = scale_of_metric(metric)
        if scale.published:
            return scale.description
        cal = calibrated_metric(metric)
        fams = [f for f in self.calibrated if f.metric == cal and model in f.floors]
        if fams:
            return max(fams, key=lambda f: (f.origin == "yours", f.points)).scale
        anchor = self.anchors.get(model)
        if anchor is not None and metric == "fid" and anchor.source.startswith("calibrated"):
            return f"{anchor.dataset or anchor.source} (one calibrated point)"
        return "the paper's scale"  # declared anchors ('anchor:<citation>') are published FIDs, on the paper's axis

    def quality_basis(self, model: str, sampler: str, metric: str = "fid") -> str | None:
        """Where a prediction for (``model``, ``sampler``) on ``metric``'s scale comes from, or None when that scale
        has no data for the model: your or the shipped calibration, a declared anchor, the paper's Table 1 (its own
        family sizes), or a published series. A model is never placed on a scale by its parameter count alone."""
        scale = scale_of_metric(metric)
        if scale.published:
            series = self.published_series(model, sampler, metric)
            if series is not None:
                return f"published ({series.source})"
            other = self.anchor_series(model, sampler, metric) if self.responses is not None else None
            return None if other is None else f"transferred (published with {other.sampler}: {other.source})"
        cal = calibrated_metric(metric)
        if cal is not None:
            fam = self.calibrated_for(model, sampler, cal)
            if fam is not None:
                return f"calibrated on {fam.dataset}"
            if any(f.metric == cal and model in f.floors for f in self.calibrated):
                return None  # calibrated without this sampler
        if metric not in ("fid", "clip") or sampler not in self.curves:
            return None  # prompt accuracy, a scorer's scale: only where measured; a sampler with no step curve
        if metric == "fid" and model in self.anchors:
            return f"anchor ({self.anchors[model].source})"
        points = self.size_points if metric == "fid" else self.clip_points
        if any(name == model for name, _, _ in points):
            return "the paper's Table 1"
        return None

    def max_steps_for(self, model: str, sampler: str, metric: str = "fid") -> int | None:
        """For a calibrated (model, sampler): the most steps measured (the selector does not extrapolate past it)."""
        cal = calibrated_metric(metric)
        fam = self.calibrated_for(model, sampler, cal) if cal else None
        return fam.max_steps(model, sampler) if fam is not None else None

    def curve(self, sampler: str) -> StepCurve:
        try:
            return self.curves[sampler]
        except KeyError:
            raise UsageError(f"the quality law has no curve for sampler '{sampler}'") from None

    def uncalibrated_sampler(self, model: str, sampler: str, metric: str = "fid") -> bool:
        """True when ``model`` has a calibrated quality law (measured on its own scale) that did not measure
        ``sampler``: the published curves are on another scale, so such a pair has no sound prediction."""
        cal = calibrated_metric(metric)
        fams = [f for f in self.calibrated if f.metric == cal and model in f.floors]
        if not fams:
            return False
        return sampler not in max(fams, key=lambda f: (f.origin == "yours", f.points)).curves

    def size_fid(self, unet_params: int) -> tuple[float, float, str]:
        """FID at the reference point for a model of ``unet_params`` parameters inside the paper's family (between
        its smallest and largest size), its sigma, and how it was got. Outside the family's range: UsageError."""
        cache = self.__dict__.setdefault("_size_cache", {})
        if unet_params not in cache:
            cache[unet_params] = self._size_fid(unet_params)
        return cache[unet_params]

    def _size_fid(self, unet_params: int) -> tuple[float, float, str]:
        pts = self.size_points
        x, xs = _family_position(pts, unet_params, "FID")
        for i in range(len(xs) - 1):
            if xs[i] - 1e-9 <= x <= xs[i + 1] + 1e-9:
                if abs(x - xs[i]) < 1e-9 or abs(x - xs[i + 1]) < 1e-9:
                    j = i if abs(x - xs[i]) < 1e-9 else i + 1
                    return pts[j][2], self.smooth_rms, "table1"
                w = (x - xs[i]) / (xs[i + 1] - xs[i])
                return pts[i][2] * (1 - w) + pts[i + 1][2] * w, self.smooth_rms, "interpolated"
        return pts[-1][2], self.smooth_rms, "table1"  # a single-size family

    def _held(self, curve: StepCurve, sampler: str, steps: int, flags: list[str]) -> int:
        """``steps``, or the most steps of the published data the curve's shape comes from (flagged)."""
        if curve.max_steps and steps > curve.max_steps:
            flags.append(f"held at {curve.max_steps} steps: no published {sampler} data past {curve.max_steps} steps")
            return curve.max_steps
        return steps

    def predict_fid(self, unet_params: int, sampler: str, steps: int, model: str | None = None) -> Prediction:
        """FID on the paper's scale: your calibration of ``model``, its anchor, or (inside the paper's family)
        Table 1 at ``unet_params`` plus the sampler's step deficit. Past the curve's published steps the value is
        held (flagged)."""
        if steps < 1:
            raise UsageError(f"steps must be at least 1 (got {steps})")
        fam = self.calibrated_for(model, sampler, "fid")
        if fam is not None:  # (its own curve: a flow sampler has none among the published ones)
            value, sigma = fam.predict(str(model), sampler, steps)
            most = fam.max_steps(str(model), sampler)
            beyond = [f"beyond the calibrated steps: measured up to {most}, extrapolated along the fitted curve "
                      "(recommend does not go past them)"] if most and steps > most else []
            return Prediction(value, sigma, f"calibrated:{fam.dataset}", value - Z_LEVEL * sigma,
                              value + Z_LEVEL * sigma, rows=[f"calibration: {fam.source}"], flags=beyond)
        curve = self.curve(sampler)
        flags: list[str] = []
        held = self._held(curve, sampler, steps, flags)
        anchor = self.anchors.get(model) if model else None
        if anchor is not None:
            ref_curve = self.curve(anchor.sampler)
            shift = curve.deficit(held) - ref_curve.deficit(anchor.steps)
            value = anchor.fid + shift
            low, high, sigma = interval(value, abs(shift) / max(value, 1e-9), self.intervals.k_curve,
                                        self.intervals.floor)
            return Prediction(value, sigma, "anchor", low, high, self.intervals.level,
                              rows=[f"anchor: {anchor.model} {anchor.sampler} {anchor.steps} steps FID {anchor.fid:g}"
                                    f" ({anchor.source})", f"step curve {sampler}: {curve.basis}"], flags=flags)
        size, _, basis = self.size_fid(unet_params)
        ref = self.curves[REFERENCE_SAMPLER]
        shift = curve.deficit(held) - ref.deficit(REFERENCE_STEPS)
        value = size + shift
        low, high, sigma = interval(value, abs(shift) / max(value, 1e-9), self.intervals.k_curve,
                                    self.intervals.floor)
        if basis == "interpolated":  # between two family sizes: add the size term's own residual
            sigma = math.hypot(sigma, self.smooth_rms)
            low, high = min(low, value - Z_LEVEL * sigma), max(high, value + Z_LEVEL * sigma)
        return Prediction(value, sigma, basis, low, high, self.intervals.level,
                          rows=[f"Table 1 ({PAPER_CITATION}): FID {size:.2f} at {REFERENCE_STEPS} "
                                f"{REFERENCE_SAMPLER} steps", f"step curve {sampler}: {curve.basis}"], flags=flags)

    def predict_clip(self, unet_params: int, sampler: str, steps: int, model: str | None = None) -> Prediction:
        """CLIP score (higher is better) of a size inside the paper's family: Table 1's CLIP for the size, lowered in
        proportion to the FID step deficit."""
        pts = self.clip_points
        x, xs = _family_position(pts, unet_params, "CLIP score")
        if x <= xs[0]:
            base = pts[0][2]
        elif x >= xs[-1]:
            base = pts[-1][2]
        else:
            i = max(k for k in range(len(xs) - 1) if xs[k] <= x)
            w = (x - xs[i]) / (xs[i + 1] - xs[i])
            base = pts[i][2] * (1 - w) + pts[i + 1][2] * w
        curve = self.curve(sampler)
        flags: list[str] = []
        held = self._held(curve, sampler, steps, flags)
        extra = curve.deficit(held) - self.curves[REFERENCE_SAMPLER].deficit(REFERENCE_STEPS)
        value = max(base - self.clip_per_fid * extra, 0.0)  # a CLIP score is a cosine x 1: never below 0 here
        sigma = self.clip_per_fid * curve.deficit_sigma(held) + 0.001
        return Prediction(value, sigma, "table1-clip", value - Z_LEVEL * sigma, value + Z_LEVEL * sigma,
                          rows=[f"Table 1 CLIP ({PAPER_CITATION})", f"step curve {sampler}: {curve.basis}"],
                          flags=flags)

    def is_distilled_sampler(self, sampler: str) -> bool:
        return sampler in DISTILLED_SAMPLERS

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "provenance": self.provenance,
            "reference": {"sampler": REFERENCE_SAMPLER, "steps": REFERENCE_STEPS, "param_scale": PARAM_SCALE},
            "size": {
                "points": [{"model": m, "unet_params": n, "fid": f} for m, n, f in self.size_points],
                "smooth": {"a": self.smooth_a, "b": self.smooth_b, "cov": self.smooth_cov, "rms": self.smooth_rms,
                           "form": "a - b * ln(N / 1e8)"},
            },
            "curves": {k: v.to_json() for k, v in self.curves.items()},
            "clip": {"points": [{"model": m, "unet_params": n, "clip": c} for m, n, c in self.clip_points],
                     "clip_per_fid": self.clip_per_fid},
            "anchors": {k: a.__dict__ for k, a in self.anchors.items()},
            "norm_cost": {"values": self.norm_cost, "source": PAPER_CITATION},
            "calibrated": [f.to_json() for f in self.calibrated],
            "published": [p.to_json() for p in self.published],
            "intervals": self.intervals.to_json(),
            **({"step_response": self.responses.to_json()} if self.responses is not None else {}),
        }

    @classmethod
    def from_json(cls, d: Any) -> QualityLaw:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            found = d.get("schema") if isinstance(d, dict) else None
            raise UsageError(f"not a quality law file of schema '{SCHEMA}' (found {found!r})")
        try:
            size = d["size"]
            law = cls(
                size_points=[(str(p["model"]), int(p["unet_params"]), float(p["fid"])) for p in size["points"]],
                smooth_a=float(size["smooth"]["a"]),
                smooth_b=float(size["smooth"]["b"]),
                smooth_cov=[[float(x) for x in r] for r in size["smooth"]["cov"]],
                smooth_rms=float(size["smooth"]["rms"]),
                curves={str(k): StepCurve.from_json(v) for k, v in d["curves"].items()},
                clip_points=[(str(p["model"]), int(p["unet_params"]), float(p["clip"])) for p in d["clip"]["points"]],
                clip_per_fid=float(d["clip"]["clip_per_fid"]),
                anchors={str(k): Anchor(**v) for k, v in d.get("anchors", {}).items()},
                norm_cost={str(k): float(v) for k, v in d["norm_cost"]["values"].items()},
                provenance=dict(d.get("provenance", {})),
                calibrated=[CalibratedFamily.from_json(f) for f in d.get("calibrated", [])],
                published=[PublishedSeries.from_json(p) for p in d.get("published", [])],
                intervals=IntervalFit.from_json(d["intervals"]) if "intervals" in d else IntervalFit(),
                responses=StepResponses.from_json(d["step_response"]) if "step_response" in d else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
            raise UsageError(f"quality law file is malformed ({exc.__class__.__name__}: {exc})") from None
        numbers = ([f for _, _, f in law.size_points + law.clip_points] + [law.smooth_a, law.smooth_b, law.smooth_rms,
                   law.clip_per_fid] + [x for row in law.smooth_cov for x in row] + list(law.norm_cost.values())
                   + [x for c in law.curves.values() for row in c.cov for x in row]
                   + [x for c in law.curves.values() for x in c.guidance_factors.values()]
                   + [a.fid for a in law.anchors.values()])
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in numbers):
            raise UsageError("quality law file is malformed (a number is NaN or infinite)")
        if any(not isinstance(a.steps, int) or a.steps < 1 or a.sampler not in law.curves
               for a in law.anchors.values()):
            raise UsageError("quality law file is malformed (an anchor needs steps >= 1 and a known sampler)")
        if any(n < 1 for _, n, _ in law.size_points + law.clip_points):
            raise UsageError("quality law file is malformed (a size point has unet_params < 1)")
        if len(law.size_points) < 2 or REFERENCE_SAMPLER not in law.curves:
            raise UsageError("quality law file is malformed (needs 2+ size points and a ddim curve)")
        for name, c in law.curves.items():
            if not (math.isfinite(c.C) and math.isfinite(c.p) and c.C >= 0 and c.p > 0):
                raise UsageError(f"quality law file: curve '{name}' has invalid parameters")
        law.size_points.sort(key=lambda t: t[1])
        law.clip_points.sort(key=lambda t: t[1])
        return law



def _family_position(points: list[tuple[str, int, float]], unet_params: int, what: str) -> tuple[float, list[float]]:
    """ln(N / 1e8) of ``unet_params`` and of the paper's sizes; UsageError outside the family's range (no value on
    the paper's scale by parameter count alone)."""
    x = math.log(unet_params / PARAM_SCALE) if unet_params > 0 else -math.inf
    xs = [math.log(n / PARAM_SCALE) for _, n, _ in points]
    if x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        raise UsageError(f"{unet_params} parameters lie outside the paper's family ({points[0][0]}..{points[-1][0]}):"
                         f" no {what} without data on that scale")
    return x, xs


# ---------------------------------------------------------------------------------------------- files


def shipped_law_path() -> Path:
    return PACKAGE_DIR / "data" / "quality_law.json"


def user_law_path() -> Path:
    from ldmpick.files.storage import data_dir

    return data_dir() / "quality_law.json"


MAX_LAW_BYTES = 20_000_000  # law files larger than this are refused


def load_law(path: Path | None = None) -> tuple[QualityLaw, Path]:
    """The law to use: ``path``, else the user's refitted law if it was fitted on this installation's shipped
    quality table, else the shipped default (``passed_over_user_law`` says when the user's was passed over, and
    ``STALE_LAW_NOTICE`` what to tell the user)."""
    from ldmpick.files.reader import read_json_file

    if path is None:
        path = shipped_law_path()
        if user_law_path().exists():
            try:
                user = QualityLaw.from_json(read_json_file(user_law_path(), "quality law file", MAX_LAW_BYTES))
            except UsageError as exc:  # your own law, written by 'ldmpick fit': it can be written again
                raise UsageError(f"{exc}; 'ldmpick fit' rewrites it from your quality table") from None
            if not _fitted_on_older_table(user):
                return user, user_law_path()
    return QualityLaw.from_json(read_json_file(Path(path), "quality law file", MAX_LAW_BYTES)), Path(path)


STALE_LAW_NOTICE = ("note: your refitted quality law was fitted on another ldmpick's shipped quality table; using "
                    "the shipped law: run 'ldmpick fit' to refit it with your calibrations")


def passed_over_user_law(used: Path) -> bool:
    """Whether ``load_law()`` (which returned the law at ``used``) passed over a refitted law of the user's: it was
    fitted on another shipped quality table (an older ldmpick's, or one that did not record it). No second read."""
    return used != user_law_path() and user_law_path().exists()


def unfitted_rows_notice() -> str | None:
    """A note when your quality table changed after your law was last fitted ('calibrate --no-fit', an edit):
    its new rows count only once 'ldmpick fit' refits the law. None otherwise. Two stat calls, no reading."""
    from ldmpick.quality.table import user_table_path

    table, law = user_table_path(), user_law_path()
    try:
        changed = table.stat().st_mtime
    except OSError:
        return None  # no table of yours
    try:
        fitted = law.stat().st_mtime
    except OSError:
        fitted = None
    if fitted is not None and fitted >= changed:
        return None
    return (f"note: your quality table '{table}' changed after your law was fitted (calibrate --no-fit?): its new "
            "rows count once 'ldmpick fit' refits it")


def _fitted_on_older_table(law: QualityLaw) -> bool:
    from ldmpick.quality.table import shipped_table_digest

    return law.provenance.get("shipped_table_sha256") != shipped_table_digest()  # none recorded: fitted before 0.1


def predict_query(law: QualityLaw, model: str, sampler: str, steps: list[int], metric: str = "fid") -> dict[str, Any]:
    """``ldmpick law --model M --sampler S --steps N``: the prediction at each step count on ``metric``'s scale
    (value, interval, basis, the rows it rests on, flags), or null where the scale has no data for it."""
    from ldmpick.files.errors import unknown_name
    from ldmpick.models.samplers import SAMPLERS

    scale = scale_of_metric(metric)
    _check_model_name(law, model)
    known = set(SAMPLERS) | {s.sampler for s in law.published if s.sampler}
    if sampler not in known:
        raise unknown_name("sampler", sampler, known)
    if not steps or min(steps) < 1 or max(steps) > 10_000:
        raise UsageError("--steps needs integers between 1 and 10000")
    if sampler in SAMPLERS:  # a sampler that cannot run the model has no quality to predict (nor to calibrate)
        from ldmpick.models.catalogue import resolve_model
        from ldmpick.files.errors import LdmpickError

        try:
            spec = resolve_model(model)
        except LdmpickError:  # a name only the law's data knows: nothing to check it against
            spec = None
        misfit = spec.adapter.sampler_misfit(spec, sampler) if spec is not None else None
        if misfit:
            raise UsageError(misfit)
    from ldmpick.models.catalogue import model_label

    model = model_label(model)  # a folder given by path: the name its calibration rows are kept under
    out = []
    series = law.published_series(model, sampler, metric) if scale.published else None
    first = min((k for k, _ in series.points), default=None) if series is not None else None
    for k in steps:
        pred = law.predict(model, sampler, k, metric)
        if pred is not None:
            out.append({"steps": k, **pred.to_json()})
            continue
        # a published series that starts later is data on this scale, just not at so few steps
        why = law.why_no_prediction(model, sampler, k, metric) if scale.published else None
        if why is None:
            why = (f"{NO_PUBLISHED_BELOW} {first} steps here (no extrapolation)" if first is not None and k < first
                   else NO_DATA)
        out.append({"steps": k, "value": None, "interval": None, "basis": why})
    return {"model": model, "sampler": sampler, "metric": metric, "scale": scale.description,
            "lower_is_better": scale.lower_is_better, "interval_level": law.intervals.level, "predictions": out}


NO_DATA = "no quality data on this scale"
NO_PUBLISHED_BELOW = "published from"


def _check_model_name(law: QualityLaw, model: str) -> None:
    """A model the query can be about: one ldmpick knows (catalogue, registry), one the law has data for, or a local
    folder; anything else is a typo, answered with the closest name (not with "no quality data")."""
    from pathlib import Path

    from ldmpick.models.catalogue import known_names
    from ldmpick.files.errors import unknown_name

    names = set(known_names()) | {m for m, _, _ in law.size_points} | set(law.anchors)
    names |= {m for f in law.calibrated for m in f.floors} | {s.model for s in law.published if s.model}
    if model not in names and not Path(model).expanduser().is_dir() and not _cached_hub_model(model):
        raise unknown_name("model", model, names)


def _cached_hub_model(name: str) -> bool:
    """A hub id whose snapshot is in the local Hugging Face cache (the README: anywhere a model is named)."""
    from ldmpick.models.catalogue import HUB_ID, hub_snapshot

    if not HUB_ID.match(name):
        return False
    try:
        hub_snapshot(name)
    except LdmpickError:
        return False
    return True
