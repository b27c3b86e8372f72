"""The selector: the (model, sampler, steps) with the best predicted quality within a latency budget.

For every model of a profile x sampler x steps 1..max_steps:

    latency = text_encoder + steps x (evals_per_step x unet_step + sampler_overhead) + vae_decode

from the profile (at the median, or another percentile), quality from the ``QualityLaw``. Configurations within the
budget (and within device memory) compete; the best predicted metric wins, ties go to the lower latency.

Under ``cost_model="flops"`` the candidates are the paper's family sizes and the cost is the paper's sampling cost
(normalized cost x steps, x evaluations per step), with no profile: it reproduces Mei et al. 2024.

Pure Python, no torch / numpy: this is the ``recommend`` path and must answer in well under a second.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ldmpick.errors import UsageError
from ldmpick.profile_model import Profile
from ldmpick.samplers import SAMPLERS, get_sampler
from ldmpick.quality_law import Prediction, QualityLaw
from ldmpick.quality_scales import lower_is_better, scale_of_metric

MAX_BUDGET_S = 86_400.0
BUDGET_RTOL = 1e-12  # a configuration fits a budget if its cost is within float rounding of it
UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3,
         "millisecond": 1e-3, "milliseconds": 1e-3, "min": 60.0, "m": 60.0, "minute": 60.0, "minutes": 60.0}
_BUDGET = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")


def parse_budget(text: str, unitless: bool = False) -> float:
    """``'2s'``, ``'2'``, ``'1500ms'``, ``'0.5 s'`` -> seconds. With ``unitless`` (the flops axis) a plain number."""
    if text is None or not str(text).strip():
        raise UsageError("empty budget; give a latency such as '2s' or '1500ms'")
    m = _BUDGET.match(str(text))
    if not m:
        raise UsageError(f"budget '{text}' is not a number with an optional unit (e.g. '2s', '1500ms', '0.5 s')")
    number, unit = m.group(1), m.group(2).lower()
    if unitless:
        if unit:
            raise UsageError(f"budget '{text}': under --cost-model flops the budget is in the paper's sampling-cost "
                             "units (normalized cost x steps), without a unit, e.g. '--budget 3'")
        scale = 1.0
    elif unit not in UNITS:
        raise UsageError(f"budget '{text}': unknown unit '{m.group(2)}' (use s or ms)")
    else:
        scale = UNITS[unit]
    value = float(number) * scale
    if not math.isfinite(value):
        raise UsageError(f"budget '{text}' is too large")
    if value <= 0:
        raise UsageError(f"budget '{text}' must be positive")
    if value > MAX_BUDGET_S and not unitless:
        raise UsageError(f"budget '{text}' is more than a day; give a per-image latency such as '2s'")
    return value


@dataclass
class Candidate:
    model: str
    unet_params: int
    sampler: str
    steps: int
    latency: float  # seconds (measured) or paper cost units (flops)
    quality: float  # predicted FID (lower is better) or CLIP (higher is better)
    sigma: float
    parts: dict[str, float] = field(default_factory=dict)  # seconds per part (measured cost model)
    basis: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "unet_params": self.unet_params, "sampler": self.sampler, "steps": self.steps,
                "latency": round(self.latency, 6), "quality": round(self.quality, 4), "sigma": round(self.sigma, 4),
                "parts": {k: round(v, 6) for k, v in self.parts.items()}, "basis": self.basis}


@dataclass
class CostRow:
    """What one (model, sampler) costs: fixed part + per step, in the budget's unit."""

    model: str
    unet_params: int
    sampler: str
    fixed: float
    per_step: float
    parts: dict[str, float]  # fixed parts and per-step parts, for the breakdown
    distilled: bool = False  # a few-step distilled model: distilled samplers (lcm, scm) fit it


@dataclass
class Selection:
    best: Candidate
    top: list[Candidate]
    frontier: list[Candidate]
    budget: float
    unit: str  # "s" or "cost"
    metric: str
    cost_model: str
    explanation: str
    considered: int
    excluded: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "best": self.best.to_json(),
            "top": [c.to_json() for c in self.top],
            "frontier": [c.to_json() for c in self.frontier],
            "budget": self.budget,
            "unit": self.unit,
            "metric": self.metric,
            "cost_model": self.cost_model,
            "explanation": self.explanation,
            "considered": self.considered,
            "excluded": self.excluded,
        }


def cost_rows_measured(profile: Profile, models: list[str] | None, samplers: list[str], percentile: float,
                       excluded: list[str]) -> list[CostRow]:
    """Per (model, sampler that fits it): fixed seconds (the model's own text-encoder stack and VAE decode) and
    seconds per step. Evaluations per step come from ldmpick's sampler table, never from the file."""
    memory = profile.device.get("memory_bytes")
    names = models if models is not None else profile.model_names()
    measured = {s.name for s in profile.samplers}
    rows = []
    for name in names:
        m = profile.model(name)
        if not m.ok:
            excluded.append(f"{name}: {m.status.replace('_', ' ')}")
            continue
        if memory and m.peak_memory_bytes and m.peak_memory_bytes > memory:
            excluded.append(f"{name}: needs more memory than the device has")
            continue
        if m.text_encoder is None or m.vae_decode is None:
            excluded.append(f"{name}: the profile lacks its text encoder or VAE measurement; measure it again")
            continue
        te = m.text_encoder.at(percentile) / 1e3
        vae = m.vae_decode.at(percentile) / 1e3
        step = m.denoiser_step.at(percentile) / 1e3
        for s in samplers:
            if not m.fits_sampler(s) or (m.samplers is None and s not in measured):
                continue  # (a version-1 model fits every sampler its profile measured)
            try:
                over = profile.sampler(s)
                evals = get_sampler(s).evals_per_step
            except UsageError:
                note = f"sampler {s}: not in the profile"
                if note not in excluded:
                    excluded.append(note)
                continue
            per_step = evals * step + over.step_overhead.at(percentile) / 1e3
            rows.append(CostRow(name, m.denoiser_params, s, te + vae, per_step,
                                {"text_encoder": te, "vae_decode": vae, "unet_step": step,
                                 "evals_per_step": float(evals),
                                 "sampler_overhead": over.step_overhead.at(percentile) / 1e3},
                                distilled=m.distilled))
    return rows


def cost_rows_flops(law: QualityLaw, models: list[str] | None, samplers: list[str]) -> list[CostRow]:
    """Per (family size, sampler): the paper's normalized cost per step (x evaluations per step)."""
    params = {name: n for name, n, _ in law.size_points}
    names = models if models is not None else [n for n in law.norm_cost if n in params]
    rows = []
    for name in names:
        if name not in law.norm_cost or name not in params:
            raise UsageError(f"--cost-model flops knows only the paper's family sizes ({', '.join(law.norm_cost)}); "
                             f"'{name}' has no normalized cost")
        for s in samplers:
            evals = get_sampler(s).evals_per_step
            rows.append(CostRow(name, params[name], s, 0.0, law.norm_cost[name] * evals,
                                {"norm_cost": law.norm_cost[name], "evals_per_step": float(evals)}))
    return rows


def _predict(law: QualityLaw, metric: str, row: CostRow, steps: int) -> Prediction | None:
    """The quality of ``row`` at ``steps`` on ``metric``'s scale; None where that scale has no data for it (fewer
    steps than any published point, or no data for the model and sampler at all)."""
    return law.predict(row.model, row.sampler, steps, metric)


def _better(metric: str, a: Candidate, b: Candidate) -> bool:
    """Is ``a`` better than ``b``: best predicted metric, ties broken by lower latency."""
    qa, qb = (a.quality, b.quality) if lower_is_better(metric) else (-a.quality, -b.quality)
    if abs(qa - qb) > 1e-9:
        return qa < qb
    return a.latency < b.latency


def select_config(
    rows: list[CostRow],
    law: QualityLaw,
    budget: float,
    metric: str = "fid",
    max_steps: int = 100,
    top_k: int = 5,
    unit: str = "s",
    cost_model: str = "measured",
    excluded: list[str] | None = None,
) -> Selection:
    """Best configuration within ``budget`` over ``rows`` x steps 1..max_steps."""
    scale_of_metric(metric)  # an unknown metric is a one-line error
    if not 1 <= max_steps <= 10_000:
        raise UsageError(f"--max-steps must be between 1 and 10000 (got {max_steps})")
    excluded = list(excluded or [])
    usable = []
    uncalibrated: dict[str, list[str]] = {}
    no_data: dict[str, list[str]] = {}
    for r in rows:
        if law.is_distilled_sampler(r.sampler) and not r.distilled:
            note = f"sampler {r.sampler}: only for consistency-distilled models"
            if note not in excluded:
                excluded.append(note)
            continue
        if law.uncalibrated_sampler(r.model, r.sampler, metric):
            uncalibrated.setdefault(r.sampler, []).append(r.model)
            continue
        if cost_model == "measured" and law.quality_basis(r.model, r.sampler, metric) is None:
            no_data.setdefault(r.model, []).append(r.sampler)
            continue
        usable.append(r)
    for model, samplers in no_data.items():
        excluded.append(no_data_note(model, samplers, metric))
    for sampler, models in uncalibrated.items():
        excluded.append(f"sampler {sampler}: {', '.join(models)} calibrated without it "
                        f"('ldmpick calibrate --models {','.join(models)} --samplers {sampler}' adds it)")
    if not usable:
        raise UsageError("no candidate configurations: " + ("; ".join(excluded) or "no models or samplers"))
    scales: dict[str, list[str]] = {}
    for r in usable:
        names = scales.setdefault(law.scale_of(r.model, metric), [])
        if r.model not in names:
            names.append(r.model)
    if len(scales) > 1:  # FIDs in different feature spaces / protocols cannot be ranked against each other
        groups = "; ".join(f"{', '.join(ms)} on {scale}" for scale, ms in scales.items())
        raise UsageError(f"the candidates' quality is measured on different scales ({groups}); "
                         "compare models of one group at a time with --models, or calibrate them together "
                         "with the same --samples and --guidance")
    fastest = min(r.fixed + r.per_step for r in usable)
    if budget < fastest:
        fmt = _fmt_s if unit == "s" else _fmt_cost
        best_row = min(usable, key=lambda r: r.fixed + r.per_step)
        raise UsageError(
            f"budget {fmt(budget)} is below the fastest possible configuration: {fmt(fastest)} "
            f"({best_row.model}, {best_row.sampler}, 1 step); raise the budget"
        )
    best: Candidate | None = None
    per_pair: list[Candidate] = []
    all_in_budget: list[Candidate] = []
    considered = 0
    capped: dict[str, list[str]] = {}
    for r in usable:
        n_max = steps_within(r, budget, max_steps)
        cap = law.max_steps_for(r.model, r.sampler, metric)
        if cap is not None and n_max > cap:  # a calibrated model: no extrapolation past its measured steps
            n_max = cap
            capped.setdefault(str(cap), []).append(f"{r.model} {r.sampler}")
        pair_best: Candidate | None = None
        for steps in range(1, n_max + 1):
            considered += 1
            pred = _predict(law, metric, r, steps)
            if pred is None:  # fewer steps than the scale's data for this model: no extrapolation
                continue
            c = Candidate(r.model, r.unet_params, r.sampler, steps, r.fixed + steps * r.per_step, pred.value,
                          pred.sigma, basis=pred.basis)
            all_in_budget.append(c)
            if pair_best is None or _better(metric, c, pair_best):
                pair_best = c
        if pair_best is not None:
            per_pair.append(pair_best)
            if best is None or _better(metric, pair_best, best):
                best = pair_best
        elif n_max >= 1:  # a published scale with data only at more steps than the budget affords
            excluded.append(f"{r.model} {r.sampler}: no {scale_of_metric(metric).label} data at {n_max} steps or "
                            "fewer (no extrapolation below the published step counts)")
    if best is None:
        raise UsageError("no candidate configurations within the budget: " + "; ".join(excluded))
    for cap, pairs in capped.items():
        excluded.append(f"more than {cap} steps of {', '.join(pairs)}: beyond the calibrated steps")
    row_of = {(r.model, r.sampler): r for r in usable}
    for c in [best] + per_pair:
        c.parts = _parts(row_of[(c.model, c.sampler)], c.steps, unit)
    key = (lambda c: (c.quality, c.latency)) if lower_is_better(metric) else (lambda c: (-c.quality, c.latency))
    top = sorted(per_pair, key=key)[:top_k]
    frontier = pareto_frontier(all_in_budget, metric)
    for c in frontier:
        c.parts = _parts(row_of[(c.model, c.sampler)], c.steps, unit)
    explanation = explain(best, usable, law, metric, budget, unit, cost_model, max_steps)
    close = [c for c in top[1:] if c.model != best.model and abs(c.quality - best.quality) < max(c.sigma, best.sigma)]
    if close:
        c = close[0]
        qf = f"{c.quality:.2f}" if lower_is_better(metric) else f"{c.quality:.4f}"
        explanation += (f" {c.model} with {c.sampler} at {c.steps} steps ({qf}) is within the prediction's "
                        "uncertainty of it: either is a sound choice.")
    return Selection(best, top, frontier, budget, unit, metric, cost_model, explanation, considered, excluded)


def no_data_note(model: str, samplers: list[str], metric: str) -> str:
    """What recommend says of a model it cannot rank: no quality data on this scale, and the command that would
    measure it (ldmpick calibrate measures FID and, on the demo world, prompt accuracy, on your own scale)."""
    scale = scale_of_metric(metric)
    measure = f"ldmpick calibrate --models {model} --samplers {','.join(samplers)}"
    if scale.published:
        how = f"published values only; measure it on your own scale with '{measure}' and rank with --metric fid"
    elif metric == "clip":
        how = f"the paper's CLIP exists for its family only; measure FID with '{measure}' and rank with --metric fid"
    else:
        how = f"measure it: '{measure}'"
    return f"{model}: no quality data on this scale ({scale.label}) for {', '.join(samplers)} ({how})"


def steps_within(row: CostRow, budget: float, max_steps: int) -> int:
    """The most steps (up to ``max_steps``) of ``row`` whose total cost is within ``budget``; 0 if none."""
    if row.fixed > budget:
        return 0
    if row.per_step <= 0:
        return max_steps
    n = min(max_steps, int((budget - row.fixed) / row.per_step + 1e-9))
    # the epsilon above absorbs float rounding (0.2 x 15 cost units is a budget of 3); it must not overshoot more
    while n > 0 and row.fixed + n * row.per_step > budget * (1 + BUDGET_RTOL):
        n -= 1
    return max(n, 0)


def _parts(row: CostRow, steps: int, unit: str) -> dict[str, float]:
    if unit != "s":
        return {"sampling_cost": steps * row.per_step}
    p = row.parts
    return {"text_encoder": p["text_encoder"], "denoise": steps * row.per_step, "vae_decode": p["vae_decode"],
            "unet_step": p["unet_step"], "sampler_overhead_per_step": p["sampler_overhead"]}


def pareto_frontier(cands: list[Candidate], metric: str) -> list[Candidate]:
    """Configurations no other one beats on both latency and quality, from fastest to best."""
    sign = 1.0 if lower_is_better(metric) else -1.0
    out: list[Candidate] = []
    best_q = math.inf
    for c in sorted(cands, key=lambda c: (c.latency, sign * c.quality)):
        q = sign * c.quality
        if q < best_q - 1e-9:
            out.append(c)
            best_q = q
    return out


def _fmt_s(x: float) -> str:
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def _fmt_cost(x: float) -> str:
    return f"{x:.2f} cost units"


def _size_label(params: int) -> str:
    if params >= 1e9:
        return f"{params / 1e9:.1f}B"
    return f"{params / 1e6:.0f}M" if params >= 1e7 else f"{params / 1e6:.1f}M"


def explain(best: Candidate, rows: list[CostRow], law: QualityLaw, metric: str, budget: float, unit: str,
            cost_model: str, max_steps: int) -> str:
    """One paragraph: why this one, what the largest and the smallest models would get instead."""
    fmt = _fmt_s if unit == "s" else _fmt_cost
    name = scale_of_metric(metric).label
    qf = (lambda v: f"{v:.2f}") if lower_is_better(metric) else (lambda v: f"{v:.4f}")
    parts = [
        f"Within {fmt(budget)}, {best.model} ({_size_label(best.unet_params)}) with {best.sampler} at {best.steps} "
        f"steps has the best predicted {name}: {qf(best.quality)} ± {qf(best.sigma)}, at {fmt(best.latency)}."
    ]
    by_size = sorted({(r.unet_params, r.model) for r in rows})
    for params, model in (by_size[-1], by_size[0]):
        if model == best.model:
            continue
        mine = [r for r in rows if r.model == model and r.sampler == best.sampler] or [r for r in rows if r.model == model]
        r = mine[0]
        steps = steps_within(r, budget, max_steps)
        cap = law.max_steps_for(r.model, r.sampler, metric)
        if cap is not None:
            steps = min(steps, cap)
        if steps < 1:
            parts.append(f"The {_size_label(params)} model does not fit the budget at all "
                         f"(one step with the fixed costs takes {fmt(r.fixed + r.per_step)}).")
        elif params > best.unet_params:
            pred = _predict(law, metric, r, steps)
            parts.append(f"The {_size_label(params)} model would afford only {steps} {r.sampler} steps here: "
                         + (f"predicted {name} {qf(pred.value)}." if pred is not None
                            else f"no {name} data at so few steps."))
        else:  # its best within the budget, not merely its most steps
            preds = [(k, p.value) for k in range(1, steps + 1) if (p := _predict(law, metric, r, k)) is not None]
            if not preds:
                continue
            k, q = max(preds, key=lambda t: (-t[1] if lower_is_better(metric) else t[1], -t[0]))
            parts.append(f"The {_size_label(params)} model could run up to {steps} {r.sampler} steps; its best, "
                         f"{k} steps, predicts {name} {qf(q)}, limited by its size.")
    if cost_model == "measured":
        per_step = {r.model: r.parts.get("unet_step", 0.0) for r in rows}
        lo, hi = min(per_step.values()), max(per_step.values())
        if hi > 0 and lo / hi > 0.6 and len(per_step) > 1:
            parts.append("On this profile every size costs about the same per step "
                         f"({_fmt_s(lo)}-{_fmt_s(hi)}), so the step budget does not favour small models as the "
                         "paper's FLOP axis would.")
    if best.basis.startswith("calibrated:"):
        parts.append(f"Quality is as measured by 'ldmpick calibrate' on {best.basis.split(':', 1)[1]} (its own scale, "
                     "not comparable with the paper's FIDs), fitted per model and sampler.")
    elif best.basis == "anchor":
        a = law.anchors[best.model]
        parts.append(f"{best.model} has its own quality anchor (FID {a.fid:g} at {a.steps} {a.sampler} steps, "
                     f"{a.source}): the law's step curve is applied relative to it.")
    elif best.basis.startswith("published"):
        how = {"published": "as published", "published-interpolated": "interpolated between published step counts",
               "published-held": "held at its value at the most published steps"}.get(best.basis, best.basis)
        parts.append(f"Quality is {scale_of_metric(metric).description}, {how}; values on other scales are not "
                     "compared with it.")
    best_row = next((r for r in rows if (r.model, r.sampler) == (best.model, best.sampler)), None)
    pred = _predict(law, metric, best_row, best.steps) if best_row is not None else None
    if pred is not None and pred.flags:  # held past the data, steps or sampler not stated by the source, ...
        parts.append("Note: " + "; ".join(pred.flags) + ".")
    return " ".join(parts)


def check_settings(profile: Profile, resolution: int | None, batch: int | None, cfg: bool | None,
                   mode: str | None = None) -> None:
    """The requested resolution / batch / guidance / execution mode must be what the profile measured."""
    s = profile.settings
    wanted = []
    if mode is not None and mode != s.mode:
        wanted.append(f"--mode {mode}")
    if resolution is not None and resolution != s.resolution:
        wanted.append(f"--resolution {resolution}")
    if batch is not None and batch != s.batch:
        wanted.append(f"--batch {batch}")
    if cfg is not None and cfg != s.cfg:
        wanted.append("--cfg" if cfg else "--no-cfg")
    if wanted:
        raise UsageError(
            f"profile '{profile.id}' was measured at {s.describe()}; measure one with "
            f"'ldmpick profile {' '.join(wanted)}' (or pick another with --profile)"
        )


def sampler_names(text: str | None) -> list[str]:
    from ldmpick.samplers import parse_sampler_list

    return parse_sampler_list(text) if text else list(SAMPLERS)
