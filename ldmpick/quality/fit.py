"""Fitting the quality law (``ldmpick.quality.law``) to quality tables (``ldmpick.quality.table``): bounded least
squares with scipy. The only module of the package that imports scipy; never on the ``recommend`` path."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from ldmpick.files.errors import UsageError
from ldmpick.quality.law import (PAPER_NORM_COST, PARAM_SCALE, REFERENCE_SAMPLER, REFERENCE_STEPS, Anchor,
                                 CalibratedFamily, QualityLaw, StepCurve, calibrated_metric, error_ceiling)
from ldmpick.quality.scales import INTERVAL_LEVEL, NOISE_FLOOR_LOG, IntervalFit, PublishedSeries, series_from_points
from ldmpick.quality.response_fit import fit_step_responses, step_curve_points
from ldmpick.quality.table import ANCHOR_SERIES, PublishedPoint, QualityPoint

REFERENCE_GUIDANCE = 7.5  # the paper's (Table 1) guidance scale


# Samplers without published step curves: which fitted curve they borrow, and why (documented in docs/quality-law.md).
PRIORS: dict[str, tuple[str, float, float, str]] = {
    # name: (borrowed curve, C multiplier, p multiplier, reason)
    "euler": ("ddim", 1.0, 1.0, "prior: first-order ODE solver like DDIM (DDIM is Euler on the probability-flow ODE, "
              "Karras et al. 2022); no published curve at hand"),
    "ddpm": ("ddim", 1.0, 0.6, "prior: stochastic first-order sampler, converges more slowly in steps than DDIM "
             "(Ho et al. 2020; Song et al. 2021); p scaled by 0.6, not fitted"),
    "euler-a": ("ddim", 1.0, 0.6, "prior: ancestral (stochastic) Euler, treated like DDPM; not fitted"),
    "heun": ("dpmpp-2m", 1.0, 1.0, "prior: second-order like DPM-Solver++(2M) per step (Karras et al. 2022), but "
             "each step costs 2 UNet evaluations; not fitted"),
}


def _fit_smooth_size(points: list[tuple[str, int, float]]) -> tuple[float, float, list[list[float]], float]:
    """a - b ln(N/1e8), bounded least squares (b >= 0: quality never gets worse with size)."""
    xs = [math.log(n / PARAM_SCALE) for _, n, _ in points]
    ys = [f for _, _, f in points]

    def residuals(theta):
        a, b = theta
        return [a - b * x - y for x, y in zip(xs, ys)]

    r = _least_squares(residuals, [ys[0], 1.0], [0.0, 0.0], [1e3, 1e2], "the size term")
    cov = _covariance(r)
    rms = math.sqrt(sum(v * v for v in r.fun) / len(r.fun))
    return float(r.x[0]), float(r.x[1]), cov, rms


def _least_squares(residuals: Any, x0: list[float], lo: list[float], hi: list[float], what: str) -> Any:
    """Bounded least squares from ``x0`` moved inside the bounds; a fit scipy cannot do (values far outside what
    the bounds allow, non-finite residuals) is a one-line UsageError naming ``what``, never a traceback."""
    from scipy.optimize import least_squares

    start = [min(max(v, a), b) if math.isfinite(v) else (a + b) / 2 for v, a, b in zip(x0, lo, hi)]
    start = [v if a < v < b else a + (b - a) * 1e-3 if v <= a else b - (b - a) * 1e-3
             for v, a, b in zip(start, lo, hi)]
    try:
        result = least_squares(residuals, start, bounds=(lo, hi))
    except (ValueError, ArithmeticError, FloatingPointError) as exc:
        raise UsageError(f"cannot fit {what} to the quality table ({exc})") from None
    if not all(math.isfinite(float(v)) for v in result.x):
        raise UsageError(f"cannot fit {what} to the quality table (the fit did not converge to finite values)")
    return result


def _covariance(result: Any) -> list[list[float]]:
    import numpy as np

    J = result.jac
    dof = max(1, len(result.fun) - len(result.x))
    s2 = float(np.sum(result.fun**2)) / dof
    try:
        cov = np.linalg.inv(J.T @ J) * s2
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(J.T @ J) * s2
    return [[float(x) for x in row] for row in cov]


def _fit_curves(points: list[QualityPoint], samplers: list[str],
                residuals_out: list[dict[str, Any]] | None = None) -> dict[str, StepCurve]:
    """Fit C, p per sampler jointly with one converged offset per series, in log space (relative errors).
    With ``residuals_out``, append every point's fitted value there (how well the law fits its own data)."""
    import numpy as np

    pts = [p for p in points if p.metric == "fid" and p.sampler in samplers]
    series = sorted({p.series for p in pts})
    ns, nc = len(series), len(samplers)
    lo = [0.0] * ns + [0.0, 0.1] * nc
    hi = [100.0] * ns + [2000.0, 6.0] * nc
    x0 = [min(p.value for p in pts if p.series == s) * 0.8 for s in series] + [150.0, 1.5] * nc

    def residuals(theta):
        out = []
        for p in pts:
            off = theta[series.index(p.series)]
            k = ns + 2 * samplers.index(p.sampler)
            pred = off + theta[k] * p.steps ** (-theta[k + 1])
            out.append(math.log(max(pred, 1e-6)) - math.log(p.value))
        return out

    r = _least_squares(residuals, x0, lo, hi, f"the step curves of {', '.join(samplers)}")
    cov = np.array(_covariance(r))
    if residuals_out is not None:
        for p, res in zip(pts, r.fun):
            residuals_out.append({"series": p.series, "sampler": p.sampler, "steps": p.steps, "fid": p.value,
                                  "fitted": round(p.value * math.exp(res), 2),
                                  "offset": round(float(r.x[series.index(p.series)]), 2)})
    curves = {}
    for i, name in enumerate(samplers):
        k = ns + 2 * i
        n_pts = sum(1 for p in pts if p.sampler == name)
        top = max((p.steps for p in pts if p.sampler == name), default=0)
        if name == REFERENCE_SAMPLER:  # Table 1 is its point at the reference steps
            top = max(top, REFERENCE_STEPS)
        curves[name] = StepCurve(C=float(r.x[k]), p=float(r.x[k + 1]),
                                 cov=[[float(cov[k][k]), float(cov[k][k + 1])], [float(cov[k + 1][k]), float(cov[k + 1][k + 1])]],
                                 basis=f"fitted to {n_pts} published points", points=n_pts, max_steps=top)
    return curves


def _fit_relative(points: list[QualityPoint], sampler: str, base: StepCurve, base_name: str) -> StepCurve | None:
    """A sampler with only paired points (same series, same steps as ``base_name``): scale base's C by the ratio of
    deficits above the series' converged level (estimated from ``base``'s curve). The ratio is kept per guidance
    scale; the law's curve uses the pairs measured nearest the paper's guidance (``REFERENCE_GUIDANCE``), since
    a solver's advantage changes with guidance (UniPC beats DPM-Solver++ at cfg 3 and loses at cfg 8)."""
    by_guidance: dict[float | None, list[float]] = {}
    for p in points:
        if p.metric != "fid" or p.sampler != sampler:
            continue
        partner = [q for q in points if q.series == p.series and q.sampler == base_name and q.steps == p.steps]
        if partner:
            q = partner[0]
            d_base = base.deficit(q.steps)
            converged = q.value - d_base
            by_guidance.setdefault(p.guidance, []).append((p.value - converged) / d_base)
    if not by_guidance:
        return None
    guidance = min(by_guidance, key=lambda g: (g is None, abs((g or 0.0) - REFERENCE_GUIDANCE)))
    pairs = by_guidance[guidance]
    k = sum(pairs) / len(pairs)
    spread = (max(pairs) - min(pairs)) / 2 if len(pairs) > 1 else 0.5 * k
    cov = [[base.cov[0][0] * k * k + (spread * base.C) ** 2, base.cov[0][1] * k], [base.cov[1][0] * k, base.cov[1][1]]]
    factors = {("unstated" if g is None else f"{g:g}"): round(sum(v) / len(v), 4) for g, v in sorted(
        by_guidance.items(), key=lambda t: (t[0] is None, t[0] or 0.0))}
    others = ", ".join(f"cfg {g}: {f:.2f}" for g, f in factors.items() if g != f"{guidance:g}")
    return StepCurve(C=base.C * k, p=base.p, cov=cov,
                     basis=(f"{base_name} curve scaled by {k:.2f} ({len(pairs)} paired published points at cfg "
                            f"{guidance:g}, nearest the paper's {REFERENCE_GUIDANCE:g}"
                            + (f"; other guidance: {others}" if others else "") + ")"),
                     points=len(pairs), max_steps=base.max_steps, guidance_factors=factors)


def fit_step_curves(curve_points: list[QualityPoint],
                    residuals_out: list[dict[str, Any]] | None = None) -> dict[str, StepCurve]:
    """Every sampler's step-deficit curve: ddim and dpmpp-2m fitted jointly (each series with its own converged
    offset), unipc relative to dpmpp-2m per guidance, the priors borrowed from them, lcm fitted on its own. A
    sampler whose data is missing gets no curve (nor do the priors borrowing from it)."""
    present = [name for name in ("ddim", "dpmpp-2m") if any(p.sampler == name for p in curve_points)]
    curves = _fit_curves(curve_points, present, residuals_out) if present else {}
    if "dpmpp-2m" in curves:
        unipc = _fit_relative(curve_points, "unipc", curves["dpmpp-2m"], "dpmpp-2m")
        if unipc is not None:
            curves["unipc"] = unipc
    for name, (borrowed, c_mult, p_mult, reason) in PRIORS.items():
        if borrowed not in curves:
            continue
        src = curves[borrowed]
        curves[name] = StepCurve(C=src.C * c_mult, p=src.p * p_mult,
                                 cov=[[src.cov[0][0] * 4 * c_mult**2, 0.0], [0.0, src.cov[1][1] * 4 * p_mult**2]],
                                 basis=reason, points=0, max_steps=src.max_steps)
    lcm_points = [p for p in curve_points if p.sampler == "lcm"]
    if lcm_points:
        lcm = _fit_curves(lcm_points, ["lcm"])["lcm"]
        lcm.basis = f"distilled (consistency models only): {lcm.basis}"
        curves["lcm"] = lcm
    return curves


# ---------------------------------------------------------------------------------------------- intervals


def _conformal_quantile(scores: list[float], level: float) -> float:
    """The ceil((n + 1) level)-th smallest score (split-conformal rank); the largest when n is small."""
    if not scores:
        return 1.0
    ordered = sorted(scores)
    rank = min(len(ordered), max(1, math.ceil((len(ordered) + 1) * level)))
    return ordered[rank - 1]


def _score(published: float, predicted: float, shift: float, floor: float) -> float:
    """How much of the calibrated width a held-out point needs: (|log miss| - floor) / relative shift."""
    if predicted <= 0 or published <= 0:
        return math.inf
    miss = abs(math.log(published / predicted))
    if miss <= floor:
        return 0.0
    return (miss - floor) / shift if shift > 1e-12 else math.inf


def held_out_curve_predictions(curve_points: list[QualityPoint]) -> list[dict[str, Any]]:
    """Leave one series out: fit the step curves without it, anchor it at its point with the most steps (as a
    model with one published FID is anchored) and predict its other points from the curves. One row per predicted
    point; points whose sampler has no curve without the series are left out."""
    rows = []
    for name in sorted({p.series for p in curve_points}):
        held = [p for p in curve_points if p.series == name]
        if len(held) < 2:
            continue
        curves = fit_step_curves([p for p in curve_points if p.series != name])
        anchor = max(held, key=lambda p: (p.steps, p.sampler == "dpmpp-2m", p.sampler == REFERENCE_SAMPLER))
        if anchor.sampler not in curves:
            continue
        ca = curves[anchor.sampler]
        a_steps = min(anchor.steps, ca.max_steps) if ca.max_steps else anchor.steps
        for p in held:
            if p is anchor or p.sampler not in curves:
                continue
            c = curves[p.sampler]
            steps = min(p.steps, c.max_steps) if c.max_steps else p.steps
            shift = c.deficit(steps) - ca.deficit(a_steps)
            predicted = anchor.value + shift
            rows.append({"series": name, "sampler": p.sampler, "steps": p.steps, "guidance": p.guidance,
                         "published": p.value, "predicted": round(predicted, 4),
                         "anchor": f"{anchor.sampler} {anchor.steps} steps",
                         "shift": abs(shift) / predicted if predicted > 0 else math.inf})
    return rows


def held_out_interpolations(series: list[PublishedSeries]) -> list[dict[str, Any]]:
    """Leave one point out of every published series with 3+ stated step counts: interpolate it (linearly in log
    steps) from its neighbours, as a step count between two published ones is predicted."""
    rows = []
    for s in series:
        if not s.steps_stated or len(s.points) < 3:
            continue
        for (k0, v0), (k, v), (k1, v1) in zip(s.points, s.points[1:], s.points[2:]):
            w = (math.log(k) - math.log(k0)) / (math.log(k1) - math.log(k0))
            predicted = v0 + (v1 - v0) * w
            rows.append({"series": f"{s.scale}: {s.series}", "steps": k, "published": v,
                         "predicted": round(predicted, 6),
                         "shift": abs(v1 - v0) / abs(predicted) if predicted else math.inf})
    return rows


def _calibrate(rows: list[dict[str, Any]], level: float, floor: float) -> tuple[float, dict[str, Any]]:
    """The width factor k covering ``level`` of the held-out rows, and the coverage with k chosen without each
    row's own series (the honest figure: a series never calibrates its own interval)."""
    scores = [_score(r["published"], r["predicted"], r["shift"], floor) for r in rows]
    k = _conformal_quantile([x for x in scores if math.isfinite(x)] + [x for x in scores if not math.isfinite(x)],
                            level)
    k = k if math.isfinite(k) else max((x for x in scores if math.isfinite(x)), default=1.0)
    covered = 0
    for r, score in zip(rows, scores):
        others = [x for x, q in zip(scores, rows) if q["series"] != r["series"]]
        k_other = _conformal_quantile(others, level)
        r["covered"] = bool(score <= k_other)
        covered += r["covered"]
    in_sample = sum(score <= k for score in scores)
    for r in rows:
        r["shift"] = round(r["shift"], 6) if math.isfinite(r["shift"]) else None
    return k, {"covered": covered, "points": len(rows), "covered_in_sample": in_sample,
               "series": len({r["series"] for r in rows}), "rows": rows}


def interval_calibration(curve_points: list[QualityPoint], series: list[PublishedSeries],
                         level: float = INTERVAL_LEVEL, floor: float = NOISE_FLOOR_LOG) -> IntervalFit:
    """Calibrate the interval widths on held-out published points (see ``IntervalFit``): along fitted step curves
    (leave one series out) and between published points (leave one point out)."""
    k_curve, curve_cov = _calibrate(held_out_curve_predictions(curve_points), level, floor)
    k_interp, interp_cov = _calibrate(held_out_interpolations(series), level, floor)
    return IntervalFit(k_curve=round(k_curve, 4), k_interp=round(k_interp, 4), level=level, floor=floor,
                       coverage={"curve": curve_cov, "interpolation": interp_cov})


MIN_FAMILY_POINTS = 6
MIN_SCORER_POINTS = 5  # a scorer's scale: one model at five step counts ('calibrate --scorer ... --steps 4,8,16,28,50')


def fit_calibrated_family(points: list[QualityPoint], dataset: str, metric: str,
                          guidance: float | None = None, samples: int | None = None) -> CalibratedFamily | None:
    """Fit ``floor_m + k_m * C_sampler * s^-p_sampler`` to one calibrated data set measured at one guidance scale
    (see ``CalibratedFamily``). ``None`` when there are too few points (fewer than 6, or no model with 2 step
    counts of one sampler)."""
    import numpy as np

    pts = [p for p in points if p.dataset == dataset and p.metric == metric and p.guidance == guidance]
    if samples is not None:
        pts = [p for p in pts if p.num_samples == samples]
    n_models, n_samplers = len({p.model for p in pts}), len({p.sampler for p in pts})
    fewest = MIN_FAMILY_POINTS if metric in ("fid", "prompt_acc") else MIN_SCORER_POINTS
    if len(pts) < max(fewest, 2 * n_models - 1 + 2 * n_samplers + 2):  # more points than parameters
        return None
    for key in ("model", "sampler"):  # every model and every sampler seen at 2 step counts or more
        for name in {getattr(p, key) for p in pts}:
            if len({p.steps for p in pts if getattr(p, key) == name}) < 2:
                return None

    ceiling = error_ceiling(metric)

    def err(p: QualityPoint) -> float:  # what the law models: FID, or an error such as 1 - accuracy
        return max(ceiling - p.value, 1e-4 * max(1.0, ceiling)) if ceiling is not None else max(p.value, 1e-6)

    models = sorted({p.model for p in pts}, key=lambda m: (min(q.unet_params or 0 for q in pts if q.model == m), m))
    samplers = sorted({p.sampler for p in pts})
    nm, ns = len(models), len(samplers)
    top = max(err(p) for p in pts)
    # theta = floors (nm) + log scales of models 2..nm (nm - 1) + (C, p) per sampler
    x0 = [min(err(p) for p in pts if p.model == m) * 0.8 for m in models] + [0.0] * (nm - 1) + [top, 1.0] * ns
    lo = [0.0] * nm + [-4.0] * (nm - 1) + [0.0, 0.05] * ns
    hi = [top * 2 + 1.0] * nm + [4.0] * (nm - 1) + [top * 100 + 1.0, 6.0] * ns

    def unpack(theta: Any) -> tuple[list[float], list[float], list[tuple[float, float]]]:
        floors = list(theta[:nm])
        scales = [1.0] + [math.exp(v) for v in theta[nm:2 * nm - 1]]
        k = 2 * nm - 1
        return floors, scales, [(theta[k + 2 * i], theta[k + 2 * i + 1]) for i in range(ns)]

    def residuals(theta: Any) -> list[float]:
        floors, scales, curves = unpack(theta)
        out = []
        for p in pts:
            i, j = models.index(p.model), samplers.index(p.sampler)
            pred = floors[i] + scales[i] * curves[j][0] * p.steps ** (-curves[j][1])
            out.append(math.log(max(pred, 1e-6)) - math.log(err(p)))
        return out

    r = _least_squares(residuals, x0, lo, hi, f"the calibrated data set '{dataset}'")
    cov = np.array(_covariance(r))
    floors, scales, curves = unpack(r.x)
    k = 2 * nm - 1
    fitted_curves = {}
    for i, name in enumerate(samplers):
        a = k + 2 * i
        fitted_curves[name] = StepCurve(C=float(curves[i][0]), p=float(curves[i][1]),
                                        cov=[[float(cov[a][a]), float(cov[a][a + 1])],
                                             [float(cov[a + 1][a]), float(cov[a + 1][a + 1])]],
                                        basis=f"calibrated on {dataset}", points=sum(p.sampler == name for p in pts))
    rms = math.sqrt(sum(v * v for v in r.fun) / len(r.fun))
    residual_rows = []
    for p, res in zip(pts, r.fun):
        measured = p.value
        fitted = err(p) * math.exp(res)
        residual_rows.append({"model": p.model, "sampler": p.sampler, "steps": p.steps, "measured": round(measured, 6),
                              "fitted": round(ceiling - fitted if ceiling is not None else fitted, 6)})
    return CalibratedFamily(dataset=dataset, metric=metric, guidance=guidance, samples=samples,
                            floors={m: float(f) for m, f in zip(models, floors)},
                            scales={m: float(sc) for m, sc in zip(models, scales)},
                            curves=fitted_curves, rms_log=rms, points=len(pts),
                            source="; ".join(sorted({p.source for p in pts})), residuals=residual_rows)


def fit_law(tables: list[tuple[list[QualityPoint], str]], command: str = "",
            published: list[PublishedPoint] | None = None) -> QualityLaw:
    """Fit the law from quality tables (the shipped one first, then the user's calibrated points) and the published
    results (default: the shipped published table), with intervals calibrated on held-out published points."""
    from ldmpick import __version__
    from ldmpick.models.catalogue import FAMILY_CHANNELS, family_spec

    points = [p for pts, _ in tables for p in pts]
    table1 = [p for p in points if p.series == "mei2024-table1" and p.metric == "fid"]
    table1_clip = [p for p in points if p.series == "mei2024-table1-clip" and p.metric == "clip"]
    if len(table1) < 2:
        raise UsageError("the quality table needs Table 1 (series mei2024-table1) to fit the size term")

    def params(p: QualityPoint) -> int:
        if p.unet_params:
            return p.unet_params
        if p.model in FAMILY_CHANNELS:
            return family_spec(p.model).unet_params  # computed from the verified config
        raise UsageError(f"quality point for '{p.model}' has no unet_params")

    size_points = sorted(((p.model, params(p), p.value) for p in table1), key=lambda t: t[1])
    clip_points = sorted(((p.model, params(p), p.value) for p in table1_clip), key=lambda t: t[1])
    a, b, cov, rms = _fit_smooth_size(size_points)

    curve_points = step_curve_points(points)
    fit_residuals: list[dict[str, Any]] = []
    curves = fit_step_curves(curve_points, fit_residuals)
    if published is None:
        from ldmpick.quality.table import load_published

        published = load_published()
    series = series_from_points(published)  # all of them check the intervals; catalogue models' ones ship
    intervals = interval_calibration(curve_points, series)
    for held_out in intervals.coverage.values():  # the counts ship; the rows: scripts/quality_coverage.py, docs
        held_out.pop("rows", None)

    # The CLIP step penalty: assume CLIP trades against FID along steps as it does along sizes in Table 1.
    clip_per_fid = 0.0
    if len(clip_points) >= 2:
        clip_per_fid = (clip_points[-1][2] - clip_points[0][2]) / max(1e-9, size_points[0][2] - size_points[-1][2])

    anchors = {}
    declared: dict[str, bool] = {}  # the model's anchor is a declared one (series 'anchor:<citation>'), not measured
    for p in points:  # calibrated or user-declared points of models outside the family: anchors (most steps wins)
        if p.series.startswith(ANCHOR_SERIES) and p.metric == "fid" and p.sampler in curves:
            # (an anchor is moved along its sampler's step curve: a sampler without one, a flow sampler, cannot
            # anchor; such rows count once a calibrated family fits them, with enough points)
            old = anchors.get(p.model)
            both_declared = old is not None and p.series.startswith("anchor") and declared.get(p.model, False)
            if (both_declared and (old.sampler, old.steps) == (p.sampler, p.steps)
                    and abs(old.fid - p.value) > 1e-9 * max(1.0, abs(p.value))):
                # two declared anchors of one configuration that disagree: neither wins silently
                raise UsageError(f"two anchors of '{p.model}' ({p.sampler}, {p.steps} steps) disagree: FID "
                                 f"{old.fid:g} ({old.source}) and {p.value:g} ({p.source}); keep one in your table")
            if old is None or p.steps >= old.steps:
                anchors[p.model] = Anchor(p.model, p.sampler, p.steps, p.value, p.source, p.dataset)
                declared[p.model] = p.series.startswith("anchor")

    # calibrated data sets with enough points get the law's form fitted to them (per data set and metric)
    calibrated = []
    # your own calibration of a model replaces the shipped one (the first table is the shipped table)
    # your measurement of a configuration replaces the shipped one (the first table is the shipped table)
    def row_key(p: QualityPoint) -> tuple:
        return (p.model, p.sampler, p.steps, p.metric, p.dataset, p.guidance, p.num_samples, p.resolution)

    shipped_ids = {id(p) for p in tables[0][0]} if tables else set()
    mine = {row_key(p) for pts, _ in tables[1:] for p in pts if p.series.startswith("calibrated")}
    cal_points = [p for p in points if p.series.startswith("calibrated")
                  and not (id(p) in shipped_ids and row_key(p) in mine)]
    # one fit per data set, guidance scale and sample count (FID's bias depends on the sample count)
    groups = {(p.dataset, p.guidance, p.num_samples) for p in cal_points}
    for dataset, guidance, samples in sorted(groups, key=lambda t: (t[0], t[1] or 0, t[2] or 0)):
        # FID, prompt accuracy, and each reference-free scorer's own scale (never merged with another)
        scorer_metrics = sorted({p.metric for p in cal_points if p.metric not in ("fid", "prompt_acc", "clip")
                                 and calibrated_metric(p.metric) == p.metric})
        for metric in ("fid", "prompt_acc", *scorer_metrics):
            fam = fit_calibrated_family(cal_points, dataset, metric, guidance, samples)
            if fam is not None:
                group = [p for p in cal_points if (p.dataset, p.guidance, p.num_samples, p.metric)
                         == (dataset, guidance, samples, metric)]
                fam.origin = "shipped" if all(id(p) in shipped_ids for p in group) else "yours"
                calibrated.append(fam)

    # step responses: every sweep at hand (the shipped table's curves, the published series), and each model's
    # own from your calibrated rows at several step counts ('calibrated step response')
    yours = [p for pts, _ in tables[1:] for p in pts if p.series.startswith("calibrated")]
    responses = fit_step_responses(tables[0][0] if tables else [], series, yours)

    import platform

    import numpy
    import scipy

    from ldmpick.quality.table import shipped_table_digest

    provenance = {
        "source": "; ".join(sorted({where for _, where in tables})),
        "data": sorted({p.source for p in points}),
        "command": command or "ldmpick fit",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {"ldmpick": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
                     "scipy": scipy.__version__},
        "method": "scipy.optimize.least_squares (bounded); covariance = inv(J^T J) * residual variance",
        "size_residual_rms_fid": round(rms, 4),
        # every published step-curve point next to what the fitted ddim / dpmpp-2m curves (+ its series' fitted
        # converged offset) give for it: where the single power law misses its own data
        "step_curve_fit": fit_residuals,
        "published_table": "ldmpick/data/published_quality.csv (scripts/build_published_quality.py)",
        "shipped_table_sha256": shipped_table_digest(),
    }
    return QualityLaw(size_points=size_points, smooth_a=a, smooth_b=b, smooth_cov=cov, smooth_rms=rms,
                      curves=curves, clip_points=clip_points, clip_per_fid=clip_per_fid, anchors=anchors,
                      norm_cost=dict(PAPER_NORM_COST), provenance=provenance, calibrated=calibrated,
                      published=[s for s in series if s.model], intervals=intervals, responses=responses)
