"""Fitting the step responses (``ldmpick.quality.step_response``) to every sweep at hand, and checking how far
they transfer: leave one model out (a response of other models) and leave one scale out (the same model's response
on its other scales), with interval widths calibrated so that held-out points fall inside at the stated rate.

The sweeps: every published series with two or more stated step counts (``published_quality.csv``: the flow sweeps
of FLUX.1-dev and SD3-Medium, the few-step series of SANA-Sprint Table 2, the LCM and ADD tables), the paper's
step curves (``quality_points.csv``: SD v1.x / v2.1 FIDs by step count) and the demo family's measured curves (its
calibrated rows). Pure Python (a grid over p, closed-form A): no scipy needed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from ldmpick.quality.scales import INTERVAL_LEVEL, SCALES, PublishedSeries
from ldmpick.quality.table import ANCHOR_SERIES
from ldmpick.quality.step_response import (DISTILLED_SAMPLERS, FLOOR_UNITS, OTHER_MODEL, OTHER_SCALE, Response,
                                           ScaleUnit, StepResponses, group_of)

MIN_UNIT_MODELS = 4  # a published scale's spread needs this many models; else its unit_from scale's
P_GRID = [round(0.05 * i, 2) for i in range(2, 81)]  # 0.1 .. 4.0


@dataclass
class Sweep:
    name: str
    model: str  # who it measured (ldmpick name where known, else the reference's name): leave-one-model-out
    scale: str  # unit key
    group: str
    sampler: str
    points: list[tuple[int, float]]  # (steps, value), sorted


def _label(name: str) -> str:
    """One spelling per model across sources ('SD v1.5', 'SDv1.5', 'SD1.5')."""
    return name.lower().replace(" ", "").replace("sdv", "sd").replace("stablediffusion", "sd")


def series_kind(sampler: str, model: str) -> str:
    """The kind of model a published series measured: distilled (its sampler or the catalogue says so), flow
    (a flow sampler, or a catalogue family that runs only flow samplers), or an epsilon / v UNet."""
    from ldmpick.models.samplers import SAMPLERS

    s = SAMPLERS.get(sampler)
    if sampler in DISTILLED_SAMPLERS or (s is not None and s.distilled_only):
        return "distilled"
    spec = _catalogue_spec(model)
    if spec is not None and spec.distilled:
        return "distilled"
    if s is not None:
        return "flow" if s.flow else "unet"
    if spec is not None:
        from ldmpick.models.samplers import SAMPLERS as ALL

        fitting = [ALL[n] for n in spec.adapter.fitting_samplers(spec) if n in ALL]
        return "flow" if fitting and all(x.flow for x in fitting) else "unet"
    return "unet"


def _catalogue_spec(model: str) -> Any:
    from ldmpick.files.errors import LdmpickError
    from ldmpick.models.catalogue import catalogue_entries, catalogue_spec

    if not model or model not in catalogue_entries():
        return None
    try:
        return catalogue_spec(model)
    except LdmpickError:
        return None


def _order(sampler: str) -> int:
    from ldmpick.models.samplers import SAMPLERS

    s = SAMPLERS.get(sampler)
    return s.order if s is not None else 1


def published_sweeps(series: list[PublishedSeries]) -> list[Sweep]:
    out = []
    for s in series:
        if not s.steps_stated or len(s.points) < 2 or s.scale not in SCALES:
            continue
        kind = series_kind(s.sampler, s.model)
        out.append(Sweep(f"{s.scale}: {s.series}", s.model or _label(s.reference_model), s.scale,
                         group_of(kind, _order(s.sampler)), s.sampler, list(s.points)))
    return out


def table_sweeps(points: list[Any], scale_of_point: Any) -> list[Sweep]:
    """Sweeps of quality-table rows: one per (series, model, sampler, metric, data set) with 2+ step counts."""
    groups: dict[tuple, list[Any]] = {}
    for p in points:
        groups.setdefault((p.series, p.model, p.sampler, p.metric, p.dataset, p.guidance, p.num_samples), []).append(p)
    out = []
    for (series, model, sampler, metric, dataset, _, _), pts in sorted(groups.items(), key=lambda t: str(t[0])):
        by_steps: dict[int, list[float]] = {}
        for p in pts:
            by_steps.setdefault(p.steps, []).append(p.value)
        if len(by_steps) < 2:
            continue
        kind = "distilled" if sampler in DISTILLED_SAMPLERS else "unet"
        out.append(Sweep(f"{series}: {model} {sampler} {metric}", _label(model), scale_of_point(pts[0]),
                         group_of(kind, _order(sampler)),
                         sampler, sorted((k, sum(v) / len(v)) for k, v in by_steps.items())))
    return out


def step_curve_points(points: list[Any]) -> list[Any]:
    """The published step-curve points: every row that is neither Table 1 nor a model's anchor or calibration."""
    return [p for p in points if p.metric == "fid" and not p.series.startswith(("mei2024",) + ANCHOR_SERIES)]



# ---------------------------------------------------------------------------------------------- units


def scale_units(series: list[PublishedSeries], extra: dict[str, tuple[list[float], bool]]) -> dict[str, ScaleUnit]:
    """Each published scale's spread across models (at each model's most steps), borrowed from its ``unit_from``
    scale where fewer than ``MIN_UNIT_MODELS`` models were published on it; ``extra``: other scales' values
    (one per model) and whether lower is better."""
    per_scale: dict[str, dict[str, float]] = {}
    for s in series:
        if s.scale not in SCALES:
            continue
        who = s.model or _label(s.reference_model)
        per_scale.setdefault(s.scale, {}).setdefault(who, s.points[-1][1])
    units: dict[str, ScaleUnit] = {}
    for key, by_model in per_scale.items():
        lower = SCALES[key].lower_is_better
        if len(by_model) >= MIN_UNIT_MODELS:
            units[key] = _spread(list(by_model.values()), lower, f"spread of {len(by_model)} models' published values")
    for key, (values, lower) in extra.items():
        if len(values) >= 3:
            units[key] = _spread(values, lower, f"spread of {len(values)} models")
    for key, scale in SCALES.items():
        if key not in units and scale.unit_from in units:
            src = units[scale.unit_from]
            units[key] = ScaleUnit(src.unit, scale.lower_is_better,
                                   f"borrowed from {scale.unit_from} (too few models on this scale)")
    return units


def _spread(values: list[float], lower: bool, basis: str) -> ScaleUnit:
    xs = [-math.log(v) if lower else v for v in values if (v > 0 or not lower)]
    return ScaleUnit(max(statistics.stdev(xs), 1e-6), lower, basis)


# ---------------------------------------------------------------------------------------------- fitting


def fit_response(sweeps: list[Sweep], units: dict[str, ScaleUnit]) -> Response | None:
    """``-A k^-p`` with one converged level per sweep (least squares in scale units: a grid over p, A in closed
    form, A >= 0). None without a sweep of 2+ points on a scale with a unit."""
    data = [(s, [(k, units[s.scale].to_units(v)) for k, v in s.points]) for s in sweeps
            if s.scale in units and len(s.points) >= 2]
    if not data:
        return None
    best: tuple[float, float, float] | None = None  # (sse, A, p)
    for p in P_GRID:
        sxy = sxx = 0.0
        centred = []
        for _, pts in data:
            xs = [k ** (-p) for k, _ in pts]
            ys = [u for _, u in pts]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            centred.append([(x - mx, y - my) for x, y in zip(xs, ys)])
            sxy += sum(x * y for x, y in centred[-1])
            sxx += sum(x * x for x, _ in centred[-1])
        a = max(-sxy / sxx, 0.0) if sxx > 0 else 0.0
        sse = sum((y + a * x) ** 2 for c in centred for x, y in c)
        if best is None or sse < best[0] - 1e-12:
            best = (sse, a, p)
    assert best is not None
    sse, a, p = best
    n = sum(len(pts) for _, pts in data)
    return Response(A=round(a, 6), p=p, min_steps=min(k for _, pts in data for k, _ in pts),
                    max_steps=max(k for _, pts in data for k, _ in pts),
                    sweeps=[s.name for s, _ in data], models=sorted({s.model for s, _ in data}),
                    scales=sorted({s.scale for s, _ in data}), points=n, rms=round(math.sqrt(sse / n), 4))


def fit_groups(sweeps: list[Sweep], units: dict[str, ScaleUnit]) -> dict[str, Response]:
    out = {}
    for g in sorted({s.group for s in sweeps}):
        r = fit_response([s for s in sweeps if s.group == g], units)
        if r is not None:
            out[g] = r
    return out


def fit_own(sweeps: list[Sweep], units: dict[str, ScaleUnit], models: set[str]) -> dict[str, dict[str, Response]]:
    """Each named model's own response per group, from its own published sweeps (every scale it has one)."""
    out: dict[str, dict[str, Response]] = {}
    for m in sorted(models):
        for g in sorted({s.group for s in sweeps if s.model == m}):
            r = fit_response([s for s in sweeps if s.model == m and s.group == g], units)
            if r is not None:
                out.setdefault(m, {})[g] = r
    return out


# ---------------------------------------------------------------------------------------------- held out


def _held_rows(sweep: Sweep, response: Response | None, unit: ScaleUnit, kind: str) -> list[dict[str, Any]]:
    """Anchor ``sweep`` at its point with the most steps and predict its others along ``response`` (not below the
    response's fewest steps)."""
    if response is None or not response.reaches(sweep.points[-1][0], FLOOR_UNITS):
        return []  # (a shorter sweep that has not converged cannot move this one's point: not predicted)
    k0, v0 = sweep.points[-1]
    a0 = min(max(k0, response.min_steps), response.max_steps)
    rows = []
    for k, v in sweep.points[:-1]:
        if k < response.min_steps:
            continue
        shift = response.at(min(k, response.max_steps)) - response.at(a0)
        u = unit.to_units(v0) + shift
        rows.append({"kind": kind, "series": sweep.name, "model": sweep.model, "group": sweep.group,
                     "scale": sweep.scale, "steps": k, "anchor_steps": k0, "published": v,
                     "predicted": round(unit.from_units(u), 4), "miss": abs(unit.to_units(v) - u),
                     "shift": abs(shift)})
    return rows


def held_out_transfers(sweeps: list[Sweep], units: dict[str, ScaleUnit]) -> list[dict[str, Any]]:
    """Every sweep predicted from its point with the most steps: along the response of the other models of its
    group (``other-model``), and along its own model's sweeps on other scales (``other-scale``), where it has any."""
    rows = []
    for s in sweeps:
        if s.scale not in units:
            continue
        same_group = [t for t in sweeps if t.group == s.group]
        rows += _held_rows(s, fit_response([t for t in same_group if t.model != s.model], units), units[s.scale],
                           OTHER_MODEL)
        mine = [t for t in same_group if t.model == s.model and t.scale != s.scale]
        if mine:
            rows += _held_rows(s, fit_response(mine, units), units[s.scale], OTHER_SCALE)
    return rows


def _quantile(scores: list[float], level: float) -> float:
    if not scores:
        return 1.0
    ordered = sorted(scores)
    return ordered[min(len(ordered), max(1, math.ceil((len(ordered) + 1) * level))) - 1]


def calibrate_widths(rows: list[dict[str, Any]], level: float = INTERVAL_LEVEL,
                     floor: float = FLOOR_UNITS) -> tuple[dict[str, float], dict[str, Any]]:
    """Per kind of transfer, the width factor k (split-conformal) and the coverage when each row's interval uses
    the k chosen without its own model's rows."""
    def score(r: dict[str, Any]) -> float:
        excess = max(r["miss"] - floor, 0.0)
        return 0.0 if excess == 0 else (excess / r["shift"] if r["shift"] > 1e-12 else math.inf)

    widths, coverage = {}, {}
    for kind in (OTHER_MODEL, OTHER_SCALE):
        mine = [r for r in rows if r["kind"] == kind]
        scores = [score(r) for r in mine]
        finite = [x for x in scores if math.isfinite(x)]
        k = _quantile(scores, level)
        widths[kind] = round(k if math.isfinite(k) else max(finite, default=1.0), 4)
        covered = 0
        for r, sc in zip(mine, scores):
            k_other = _quantile([x for x, q in zip(scores, mine) if q["model"] != r["model"]], level)
            r["covered"] = bool(sc <= k_other)
            covered += r["covered"]
        coverage[kind] = {"covered": covered, "points": len(mine), "k": widths[kind],
                          "models": len({r["model"] for r in mine}), "series": len({r["series"] for r in mine})}
    for r in rows:
        r["miss"], r["shift"] = round(r["miss"], 4), round(r["shift"], 4)
    return widths, coverage


# ---------------------------------------------------------------------------------------------- all of it


def fit_step_responses(points: list[Any], series: list[PublishedSeries], calibrated_yours: list[Any],
                       rows_out: list[dict[str, Any]] | None = None) -> StepResponses:
    """Fit every response: ``points`` are the shipped quality table's rows (the paper's step curves, the demo
    family's calibration), ``series`` the published series, ``calibrated_yours`` your calibrated rows (each model's
    calibrated step response). ``rows_out`` receives the held-out rows (the docs' table)."""
    paper = step_curve_points(points)  # FIDs of SD v1.x / v2.1 by step count, on their own data sets
    table1 = [p.value for p in points if p.series == "mei2024-table1" and p.metric == "fid"]
    demo = [p for p in points if p.series.startswith("calibrated")]
    extra: dict[str, tuple[list[float], bool]] = {"fid": (table1, True)}
    for metric in sorted({p.metric for p in demo}):
        key = f"calibrated:{metric}"
        converged = {}
        for p in sorted((p for p in demo if p.metric == metric), key=lambda p: p.steps):
            converged[p.model] = p.value  # at its most steps
        extra[key] = (list(converged.values()), metric == "fid")
    units = scale_units(series, extra)

    def scale_of_point(p: Any) -> str:
        return f"calibrated:{p.metric}" if p.series.startswith("calibrated") else "fid"

    sweeps = published_sweeps(series) + table_sweeps(paper + demo, scale_of_point)
    rows = held_out_transfers(sweeps, units)
    widths, coverage = calibrate_widths(rows)
    if rows_out is not None:
        rows_out.extend(rows)
    named = {s.model for s in series if s.model}
    kinds = {s.model: series_kind(s.sampler, s.model) for s in series if s.model}
    for s in series:  # a model whose any series is distilled is a distilled model
        if s.model and series_kind(s.sampler, s.model) == "distilled":
            kinds[s.model] = "distilled"
    out = StepResponses(groups=fit_groups(sweeps, units), own=fit_own([s for s in sweeps if s.model in named],
                                                                        units, named),
                        units=units, model_kinds=kinds, widths=widths, floor=FLOOR_UNITS, coverage=coverage)
    _add_calibrated(out, calibrated_yours, {p.dataset for p in demo})
    return out


def _add_calibrated(out: StepResponses, points: list[Any], shipped_datasets: set[str]) -> None:
    """Your calibrated rows: for each model and sampler measured at 2+ step counts on one scale, its own step
    response (in that scale's units: the shipped calibration's spread on its own data set; for an FID on your own
    images the MJHQ FID spread of released models; for a CLIP score x100 the MJHQ CLIP spread; else a spread relative
    to the values as MJHQ CLIP's is)."""
    groups: dict[tuple, list[Any]] = {}
    for p in points:
        groups.setdefault((p.model, p.sampler, p.metric, p.dataset, p.guidance, p.num_samples), []).append(p)
    for (model, sampler, metric, dataset, _, _), pts in sorted(groups.items(), key=lambda t: str(t[0])):
        by_steps: dict[int, list[float]] = {}
        for p in pts:
            by_steps.setdefault(p.steps, []).append(p.value)
        if len(by_steps) < 2:
            continue
        lower = metric == "fid"
        key = f"calibrated:{dataset}:{metric}"
        shipped = out.units.get(f"calibrated:{metric}") if dataset in shipped_datasets else None
        if shipped is not None:  # the shipped calibration's data set (the demo world): its own spread
            unit = shipped
        elif lower and "mjhq-fid" in out.units:  # an FID on your own images: as far apart as released models' MJHQ
            unit = ScaleUnit(out.units["mjhq-fid"].unit, True, "the MJHQ FID spread of released models")
        elif metric.startswith("clip-score:") and "mjhq-clip" in out.units:  # CLIP x100, as MJHQ CLIP is
            unit = ScaleUnit(out.units["mjhq-clip"].unit, False, "the MJHQ CLIP spread of released models")
        else:
            mean = sum(v for vs in by_steps.values() for v in vs) / len(pts)
            ref = out.units.get("mjhq-clip")
            rel = ref.unit / 28.0 if ref is not None else 0.02  # MJHQ CLIP x100 values are about 28
            unit = ScaleUnit(max(abs(mean) * rel, 1e-6), lower, "relative to its values, as MJHQ CLIP's spread is")
        out.units.setdefault(key, unit)
        sweep = Sweep(f"yours: {model} {sampler} {metric} {dataset}", model, key, "", sampler,
                      sorted((k, sum(v) / len(v)) for k, v in by_steps.items()))
        r = fit_response([sweep], {key: unit})
        if r is not None:
            out.calibrated.setdefault(model, {})[sampler] = r
            out.calibrated_source.setdefault(model, {})[sampler] = f"{dataset}, {metric}"
