"""The selector: the (model, sampler, steps) with the best predicted quality within a budget.

For every ``CostRow`` (a model and a sampler, costed by one of the cost models of ``ldmpick.costs``) x steps
1..max_steps: the cost is ``fixed + steps x per_step``, the quality comes from the ``QualityLaw``. Configurations
within the budget compete; the best predicted metric wins, ties go to the lower cost. With ``headroom``, among the
configurations whose predicted quality is within the best one's uncertainty, the one least likely to run over the
budget (by the cost model's spread) is preferred. The selector knows no cost model by name.

Pure Python, no torch / numpy: this is the ``recommend`` path and must answer in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ldmpick.models.catalogue import command_name, models_argument
from ldmpick.costs import CostModel, CostRow, steps_within
from ldmpick.files.errors import UsageError
from ldmpick.quality.law import Prediction, QualityLaw
from ldmpick.quality.scales import lower_is_better, scale_of_metric
from ldmpick.models.samplers import SAMPLERS, steps_text

T = TypeVar("T")
MAX_STEPS_LIMIT = 10_000
RISK_STEP = 0.01  # over-budget chances are compared in whole percent


@dataclass
class Candidate:
    model: str
    unet_params: int
    sampler: str
    steps: int
    latency: float  # the cost, in the cost model's unit (seconds for measured latency)
    quality: float  # predicted FID (lower is better) or CLIP (higher is better)
    sigma: float
    parts: dict[str, float] = field(default_factory=dict)  # the cost model's breakdown
    basis: str = ""
    over_budget_chance: float | None = None  # for a cost with a spread: the share of runs over the budget
    low: float | None = None  # the prediction's interval (at the law's level, 80%)
    high: float | None = None
    detail: str = ""  # what a transferred or calibrated-response value rests on
    knobs: str = "none"  # the knob list (ldmpick.knobs text form)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.sampler, self.knobs)

    def to_json(self) -> dict[str, Any]:
        doc = {"model": self.model, "unet_params": self.unet_params, "sampler": self.sampler, "steps": self.steps,
               "knobs": self.knobs,
               "latency": round(self.latency, 6), "quality": round(self.quality, 4), "sigma": round(self.sigma, 4),
               "interval": [None if v is None else round(v, 4) for v in (self.low, self.high)],
               "parts": {k: round(v, 6) for k, v in self.parts.items()}, "basis": self.basis}
        if self.detail:
            doc["basis_detail"] = self.detail
        if self.over_budget_chance is not None:
            doc["over_budget_chance"] = round(self.over_budget_chance, 4)
        return doc


@dataclass
class Selection:
    best: Candidate
    top: list[Candidate]
    frontier: list[Candidate]
    budget: float
    cost: CostModel
    metric: str
    explanation: str
    considered: int
    excluded: list[str]
    rows: list[CostRow] = field(default_factory=list)  # the usable rows the candidates came from
    unranked: list[dict[str, str]] = field(default_factory=list)  # models with no point at all on the scale

    @property
    def unit(self) -> str:
        return self.cost.unit

    def row_of(self, c: Candidate) -> CostRow:
        return next(r for r in self.rows if row_key(r) == c.key)

    def describe_cost(self, c: Candidate) -> str:
        """The candidate's cost with its parts, as the cost model writes it."""
        return self.cost.describe(self.row_of(c), c.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "best": self.best.to_json(),
            "top": [c.to_json() for c in self.top],
            "frontier": [c.to_json() for c in self.frontier],
            "budget": self.budget,
            "unit": self.cost.unit,
            "metric": self.metric,
            "cost_model": self.cost.name,
            "explanation": self.explanation,
            "considered": self.considered,
            "excluded": self.excluded,
            "unranked": self.unranked,
        }


def row_key(row: CostRow) -> tuple[str, str, str]:
    return (row.model, row.sampler, getattr(row, "knobs", "none"))


def _predict(law: QualityLaw, metric: str, row: CostRow, steps: int) -> Prediction | None:
    """The quality of ``row`` at ``steps`` on ``metric``'s scale; None where that scale has no data for it (fewer
    steps than any published point, or no data for the model and sampler at all). A row with knobs: the law's
    prediction for (model, sampler, steps) changed by each knob's effect (``knob_prediction``)."""
    pred = law.predict(row.model, row.sampler, steps, metric)
    knobs = getattr(row, "knobs", "none")
    if pred is None or knobs == "none":
        return pred
    return knob_prediction(pred, knobs, row.model, metric, steps)


def knob_effects(knobs: str, model: str, metric: str, steps: int) -> list[Any]:
    """Each knob's quality effect on ``metric``'s scale (``ldmpick.knobs.effects.EffectEstimate``) for the knobs
    that change what a run draws: caches and the torchao precisions (float precisions, compile and attention are
    taken to draw as the reference does: their kinds say so)."""
    from ldmpick.knobs import parse_knobs
    from ldmpick.knobs.effects import effect
    from ldmpick.knobs.precision import TORCHAO

    out = []
    for s in parse_knobs(knobs):
        if (s.kind == "cache" and s.name != "none") or (s.kind == "precision" and s.name in TORCHAO):
            out.append(effect(s, model, metric, steps))
    return out


def knob_unmeasured(knobs: str, model: str, metric: str, steps: int = 50) -> Any | None:
    """The first of ``knobs``' effects that is unmeasured on ``metric``'s scale (it has the command that would
    measure it), or None."""
    from ldmpick.knobs.effects import UNMEASURED

    return next((e for e in knob_effects(knobs, model, metric, steps) if e.basis == UNMEASURED), None)


def knob_prediction(pred: Prediction, knobs: str, model: str, metric: str, steps: int) -> Prediction | None:
    """``pred`` moved by each knob's effect (a published or transferred change against the same source's baseline;
    its interval added to the prediction's); None when an effect is unmeasured."""
    from dataclasses import replace as _replace

    value, low, high, notes, bases = pred.value, pred.low, pred.high, [], []
    var = pred.sigma ** 2
    for e in knob_effects(knobs, model, metric, steps):
        if e.delta is None:
            return None
        value += e.delta
        low = None if low is None else low + e.low
        high = None if high is None else high + e.high
        var += ((e.high - e.low) / 2.5631) ** 2  # an 80% interval's width in sigmas (2 x 1.2816)
        notes.append(f"{e.knob}: {e.basis}, {e.note}")
        bases.append(e.basis)
    if not bases:
        return _replace(pred, detail=(pred.detail + "; " if pred.detail else "") + f"{knobs}: no quality change "
                        "assumed (float precision, compile or attention)")
    detail = (pred.detail + "; " if pred.detail else "") + "; ".join(notes)
    return _replace(pred, value=value, sigma=math.sqrt(var), low=low, high=high, detail=detail,
                    basis=f"{pred.basis}+knob-{'transferred' if 'transferred' in bases else 'published'}")


class BudgetBelowFastest(UsageError):
    """The budget is below one step of the fastest candidate (callers may add where faster candidates are)."""


def _better(metric: str, a: Candidate, b: Candidate) -> bool:
    """Is ``a`` better than ``b``: best predicted metric, ties broken by lower latency."""
    qa, qb = (a.quality, b.quality) if lower_is_better(metric) else (-a.quality, -b.quality)
    if abs(qa - qb) > 1e-9:
        return qa < qb
    return a.latency < b.latency


def _usable_rows(rows: list[CostRow], law: QualityLaw, metric: str, excluded: list[str],
                 typed: Mapping[str, str], unranked: list[dict[str, str]] | None = None) -> list[CostRow]:
    """The rows the law can rank on ``metric``'s scale; the others are noted in ``excluded`` (with the commands
    that would measure them, naming each model as the user typed it: ``typed``, by label)."""
    usable = []
    uncalibrated: dict[str, list[str]] = {}
    no_data: dict[str, list[str]] = {}
    for r in rows:
        knobs = getattr(r, "knobs", "none")
        if knobs != "none":
            missing = knob_unmeasured(knobs, r.model, metric)
            if missing is not None:
                note = f"{r.model} {r.sampler} with {knobs}: unmeasured quality ({missing.note}; measure: " \
                       f"'{missing.command}')"
                if note not in excluded:
                    excluded.append(note)
                    if unranked is not None:
                        unranked.append({"model": r.model, "samplers": r.sampler, "knobs": knobs, "reason": note,
                                         "command": missing.command or ""})
                continue
        if law.is_distilled_sampler(r.sampler) and not r.distilled:
            note = f"sampler {r.sampler}: only for consistency-distilled models"
            if note not in excluded:
                excluded.append(note)
            continue
        if law.uncalibrated_sampler(r.model, r.sampler, metric):
            uncalibrated.setdefault(r.sampler, []).append(r.model)
            continue
        if law.quality_basis(r.model, r.sampler, metric) is None:
            no_data.setdefault(r.model, []).append(r.sampler)
            continue
        usable.append(r)
    for model, samplers in no_data.items():
        excluded.append(no_data_note(model, samplers, metric, typed.get(model)))
        if unranked is not None:
            unranked.append({"model": model, "samplers": ",".join(samplers), "reason": excluded[-1],
                             "command": measure_command(model, samplers, metric, typed.get(model)) or ""})
    for sampler, models in uncalibrated.items():
        excluded.append(f"sampler {sampler}: {', '.join(models)} calibrated without it ('ldmpick calibrate --models "
                        f"{models_argument([typed.get(m, m) for m in models])} --samplers {sampler}' adds it)")
    if not usable:
        hint = metric_hint(law, list(no_data), metric)
        raise UsageError("no candidate configurations: " + ("; ".join(excluded) or "no models or samplers")
                         + (f"; {hint}" if hint else ""))
    scales: dict[str, list[str]] = {}
    for r in usable:
        names = scales.setdefault(law.scale_of(r.model, metric), [])
        if r.model not in names:
            names.append(r.model)
    if len(scales) > 1:  # FIDs in different feature spaces / protocols cannot be ranked against each other
        groups = "; ".join(f"{', '.join(ms)} on {scale}" for scale, ms in scales.items())
        yours = [m for scale, ms in scales.items() if scale.endswith("(yours)") for m in ms]
        raise UsageError(f"the candidates' quality is measured on different scales ({groups}); "
                         "compare models of one group at a time with --models, or calibrate them together "
                         "with the same --samples and --guidance"
                         + (f"; or drop your own rows with 'ldmpick fit --forget {','.join(yours)}' (the shipped "
                            "ones then count again)" if yours else ""))
    return usable


def select_config(
    rows: list[CostRow],
    law: QualityLaw,
    budget: float,
    metric: str = "fid",
    max_steps: int = 100,
    top_k: int = 5,
    excluded: list[str] | None = None,
    headroom: bool = False,
    min_steps: int = 1,
    typed: Mapping[str, str] | None = None,
) -> Selection:
    """Best configuration within ``budget`` (in the rows' cost unit) over ``rows`` x steps min_steps..max_steps;
    with ``headroom``, the one least likely to run over the budget among those as good within the uncertainty."""
    scale_of_metric(metric)  # an unknown metric is a one-line error
    if not 1 <= max_steps <= MAX_STEPS_LIMIT:
        raise UsageError(f"--max-steps must be between 1 and {MAX_STEPS_LIMIT} (got {max_steps})")
    excluded = list(excluded or [])
    unranked: list[dict[str, str]] = []
    usable = _usable_rows(rows, law, metric, excluded, typed or {}, unranked)
    cost = usable[0].cost
    fastest_row = min(usable, key=lambda r: r.at(1))
    if budget < fastest_row.at(1):
        raise BudgetBelowFastest(
            f"budget {cost.format(budget)} is below the fastest possible configuration: "
            f"{cost.format(fastest_row.at(1))} ({fastest_row.model}, {fastest_row.sampler}, 1 step); raise the budget"
        )
    best: Candidate | None = None
    per_pair: list[Candidate] = []
    all_in_budget: list[Candidate] = []
    capped: dict[str, list[str]] = {}
    for r in usable:
        n_max = steps_within(r, budget, max_steps)
        cap = law.max_steps_for(r.model, r.sampler, metric)
        if cap is not None and n_max > cap:  # a calibrated model: no extrapolation past its measured steps
            n_max = cap
            capped.setdefault(str(cap), []).append(f"{r.model} {r.sampler}")
        pair_best: Candidate | None = None
        for steps in range(min_steps, n_max + 1):
            pred = _predict(law, metric, r, steps)
            if pred is None:  # fewer steps than the scale's data for this model: no extrapolation
                continue
            c = Candidate(r.model, r.unet_params, r.sampler, steps, r.at(steps), pred.value, pred.sigma,
                          basis=pred.basis, low=pred.low, high=pred.high, detail=pred.detail,
                          knobs=getattr(r, "knobs", "none"))
            all_in_budget.append(c)
            if pair_best is None or _better(metric, c, pair_best):
                pair_best = c
        if pair_best is not None:
            per_pair.append(pair_best)
            if best is None or _better(metric, pair_best, best):
                best = pair_best
        elif n_max >= min_steps:  # a published scale with data only at more steps than the budget affords
            excluded.append(f"{r.model} {r.sampler}{_with_knobs(r)}: no {scale_of_metric(metric).label} data at {steps_text(n_max)} or "
                            "fewer (no extrapolation below the published step counts)")
    if best is None:  # the budget admits one step of the fastest row, but not min_steps of any with data
        if min_steps > 1:
            raise UsageError(f"nothing runs {min_steps} steps within {cost.format(budget)} "
                             f"({', '.join(sorted({r.model for r in usable}))}); raise the budget or lower --steps")
        raise UsageError(f"no candidate configurations within {cost.format(budget)}: "
                         + ("; ".join(excluded) or "no quality data for any of them on this scale"))
    for cap, pairs in capped.items():
        excluded.append(f"more than {cap} steps of {', '.join(pairs)}: beyond the calibrated steps")
    row_of = {row_key(r): r for r in usable}
    best_quality = best
    if headroom and cost.has_distribution:
        best = _with_headroom(best, all_in_budget, row_of, budget, metric)
    key = (lambda c: (c.quality, c.latency)) if lower_is_better(metric) else (lambda c: (-c.quality, c.latency))
    top = sorted(per_pair, key=key)[:top_k]
    if best not in top:
        top = [best] + top[: top_k - 1]
    frontier = pareto_frontier(all_in_budget, lower_is_better(metric))
    for c in {id(c): c for c in [best] + top + frontier}.values():
        r = row_of[c.key]
        c.parts = cost.parts(r, c.steps)
        if c.over_budget_chance is None:
            c.over_budget_chance = cost.over_budget_chance(r, c.steps, budget)
    explanation = explain(best, usable, law, metric, budget, cost, max_steps)
    if best.knobs != "none":
        explanation += _knob_trade_off(best, per_pair, metric)
    if best is not best_quality:
        explanation += _headroom_note(best, best_quality, metric, cost, budget)
    close = [c for c in top if c is not best and c is not best_quality and c.model != best.model
             and abs(c.quality - best.quality) < max(c.sigma, best.sigma)]
    if close:
        c = close[0]
        explanation += (f" {c.model} with {c.sampler} at {steps_text(c.steps)} ({_fmt_q(metric, c.quality)}) is within the "
                        "prediction's uncertainty of it: either is a sound choice.")
    return Selection(best, top, frontier, budget, cost, metric, explanation, len(all_in_budget), excluded, usable,
                     unranked)


def _with_knobs(r: CostRow) -> str:
    knobs = getattr(r, "knobs", "none")
    return "" if knobs == "none" else f" with {knobs}"


def _knob_trade_off(best: Candidate, per_pair: list[Candidate], metric: str) -> str:
    """What the knobs buy: the pick against the best configuration without knobs that fits the same budget, and
    what each knob's quality effect rests on."""
    plain = [c for c in per_pair if c.knobs == "none"]
    pick = (f" The knobs are the trade-off: {best.model}, {steps_text(best.steps)}, {best.knobs}: "
            f"{_fmt_q(metric, best.quality)}")
    if plain:
        key = (lambda c: (c.quality, c.latency)) if lower_is_better(metric) else (lambda c: (-c.quality, c.latency))
        p = sorted(plain, key=key)[0]
        pick += (f"; the best plain configuration that fits, {p.model} with {p.sampler} at {steps_text(p.steps)}: "
                 f"{_fmt_q(metric, p.quality)}.")
    else:
        pick += "; no configuration without knobs fits."
    for e in knob_effects(best.knobs, best.model, metric, best.steps):
        source = f", {e.rows[0].source} {e.rows[0].table}" if e.rows else ""
        pick += (f" {e.knob}: quality change {e.delta:+.4f} (interval {e.low:+.4f} to {e.high:+.4f}, ldmpick's stated "
                 f"rule, not a measured spread), {e.basis}: {e.note}{source}.")
    return pick


def _with_headroom(best: Candidate, cands: list[Candidate], row_of: dict[tuple[str, str, str], CostRow],
                   budget: float, metric: str) -> Candidate:
    """Among the candidates whose predicted quality is within ``best``'s uncertainty, the one least likely to run
    over the budget (in whole percent); of equally likely ones, the best predicted."""
    near = [c for c in cands if abs(c.quality - best.quality) <= best.sigma]
    for c in near:
        r = row_of[c.key]
        c.over_budget_chance = r.cost.over_budget_chance(r, c.steps, budget)

    def risk(c: Candidate) -> int:
        return math.ceil((c.over_budget_chance or 0.0) / RISK_STEP - 1e-9)

    choice = best
    for c in near:
        if risk(c) < risk(choice) or (risk(c) == risk(choice) and _better(metric, c, choice)):
            choice = c
    return choice


def _headroom_note(chosen: Candidate, best: Candidate, metric: str, cost: CostModel, budget: float) -> str:
    return (f" It is preferred to {best.model} with {best.sampler} at {steps_text(best.steps)} "
            f"({_fmt_q(metric, best.quality)}, {cost.format(best.latency)}), whose predicted quality is within the "
            f"uncertainty of it but which runs over {cost.format(budget)} in {_pct(best.over_budget_chance)} of runs "
            f"against {_pct(chosen.over_budget_chance)}: more headroom for the same expected quality.")


def _pct(chance: float | None) -> str:
    if chance is None:
        return "-"
    if chance == 0:
        return "0%"
    return "<1%" if chance < 0.01 else f"{chance * 100:.0f}%"


def _fmt_q(metric: str, value: float) -> str:
    return f"{value:.2f}" if lower_is_better(metric) else f"{value:.4f}"


def no_data_note(model: str, samplers: list[str], metric: str, typed: str | None = None) -> str:
    """What recommend says of a model it cannot rank: no quality data on this scale, and the command that would
    measure it (ldmpick calibrate measures FID and, on the demo world, prompt accuracy, on your own scale), naming
    the model as the user typed it (``typed``: a folder). A model without weights gets no such command."""
    scale = scale_of_metric(metric)
    name = command_name(model, typed)
    measure = f"ldmpick calibrate --models {name} --samplers {','.join(samplers)}"
    command = measure_command(model, samplers, metric, typed)
    if scale.published and command is not None:
        how = (f"unranked: no published point of it on this scale; '{command}' measures its step response on a CLIP "
               "scale of your own (rank on it with that scale's --metric)")
    elif name is None:
        how = ("configs only, no weights to measure it with: register a checkpoint with 'ldmpick models add NAME "
               "FOLDER' and calibrate that")
    elif scale.published:
        how = (f"unranked: no published point of it on this scale; '{measure_command(model, samplers, metric, typed)}' "
               "measures its step response on a CLIP scale of your own (rank on it with that scale's --metric)")
    elif metric == "clip":
        how = f"the paper's CLIP exists for its family only; measure FID with '{measure}' and rank with --metric fid"
    else:
        how = f"measure it: '{measure}'"
    return f"{model}: no quality data on this scale ({scale.label}) for {', '.join(samplers)} ({how})"


CALIBRATE_STEPS = "4,8,16,28,50"  # the step counts a first calibration of a real model measures


def measure_command(model: str, samplers: list[str], metric: str, typed: str | None = None) -> str | None:
    """The command that would measure ``model`` (None: a model without weights): on a published scale, a
    reference-free scorer's calibration at a few step counts (a released model's configs name its weights by hub
    id: the command measures it once they are in the Hugging Face cache); else an FID calibration on your own
    scale."""
    name = command_name(model, typed)
    if name is None and scale_of_metric(metric).published:
        from ldmpick.models.catalogue import catalogue_entries

        hub = catalogue_entries().get(model, {}).get("hub_id")
        name = models_argument([hub]) if hub else None
    if name is None:
        return None
    if scale_of_metric(metric).published:
        return f"ldmpick calibrate --models {name} --scorer clip --steps {CALIBRATE_STEPS}"
    return f"ldmpick calibrate --models {name} --samplers {','.join(samplers)}"


# the published scales in the order they are preferred when as many of the asked models have a point on them
METRIC_PREFERENCE = ("geneval", "mjhq-fid", "mjhq-clip", "dpg", "imagereward")
METRIC_WHY = {"geneval": "GenEval is one 553-prompt protocol that SANA-Sprint Table 2 ran on distilled and undistilled "
              "models alike; it scores prompt following on a 0-1 scale, not the distance to one image set"}


def published_coverage(law: QualityLaw, models: list[str]) -> dict[str, list[str]]:
    """Published scale -> which of ``models`` have a published point on it (any sampler, any step count)."""
    out: dict[str, list[str]] = {}
    for s in law.published:
        if s.model in models and s.model not in out.setdefault(s.scale, []):
            out[s.scale].append(s.model)
    return out


def metric_hint(law: QualityLaw, models: list[str], metric: str) -> str | None:
    """For models with no data on an unpublished scale (``fid``, the default): the published scale that ranks
    most of them, and why. None when none has a published point."""
    if scale_of_metric(metric).published or not models:
        return None
    cover = published_coverage(law, models)
    if not cover:
        return None
    order = {m: i for i, m in enumerate(METRIC_PREFERENCE)}
    best = max(cover, key=lambda k: (len(cover[k]), -order.get(k, len(order))))
    others = ", ".join(f"{k} {len(v)}" for k, v in sorted(cover.items(), key=lambda t: -len(t[1])) if k != best)
    why = METRIC_WHY.get(best, "")
    return (f"real families are ranked on published scales: --metric {best} has a point for {len(cover[best])} of "
            f"{len(models)} ({', '.join(cover[best])}" + (f"; {others}" if others else "") + ")"
            + (f": {why}" if why else ""))


def pareto_frontier(items: Iterable[T], lower_is_better: bool = True,
                    cost: Callable[[T], float] = lambda c: c.latency,  # type: ignore[attr-defined]
                    value: Callable[[T], float] = lambda c: c.quality) -> list[T]:  # type: ignore[attr-defined]
    """The items no other one is at least as cheap and at least as good as (weakly dominated ones dropped: of
    equal cost only the best, of equal quality only the cheapest, quality differences within 1e-9 relative are
    ties), from cheapest to best."""
    sign = 1.0 if lower_is_better else -1.0
    out: list[T] = []
    best_q = math.inf
    for c in sorted(items, key=lambda c: (cost(c), sign * value(c))):
        q = sign * value(c)
        if q < best_q - 1e-9 * max(1.0, abs(best_q) if math.isfinite(best_q) else 1.0):
            out.append(c)
            best_q = q
    return out


def _size_label(params: int) -> str:
    if params >= 1e9:
        return f"{params / 1e9:.1f}B"
    return f"{params / 1e6:.0f}M" if params >= 1e7 else f"{params / 1e6:.1f}M"


def explain(best: Candidate, rows: list[CostRow], law: QualityLaw, metric: str, budget: float, cost: CostModel,
            max_steps: int) -> str:
    """One paragraph: why this one, what the largest and the smallest models would get instead, how likely the
    pick is to run over the budget."""
    fmt = cost.format
    name = scale_of_metric(metric).label

    def qf(v: float) -> str:
        return _fmt_q(metric, v)

    parts = [
        f"Within {fmt(budget)}, {best.model} ({_size_label(best.unet_params)}) with {best.sampler} at "
        f"{steps_text(best.steps)} has the best predicted {name}: {qf(best.quality)} ± {qf(best.sigma)}, at {fmt(best.latency)}."
    ]
    row = next(r for r in rows if row_key(r) == best.key)
    chance = best.over_budget_chance
    if chance is None:
        chance = cost.over_budget_chance(row, best.steps, budget)
    if chance is not None:
        share = ("no runs are expected over the budget, even with every part at its slowest measurement" if chance == 0
                 else f"{_pct(chance)} of runs are expected over the budget")
        parts.append(f"Planned on {cost.plan_basis(row)}: {share}.")
    rows = [r for r in rows if getattr(r, "knobs", "none") == "none"] or rows  # sizes compared without knobs
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
                         f"(one step with the fixed costs takes {fmt(r.at(1))}).")
        elif params > best.unet_params:
            pred = _predict(law, metric, r, steps)
            parts.append(f"The {_size_label(params)} model would afford only {steps_text(steps, r.sampler)} here: "
                         + (f"predicted {name} {qf(pred.value)}." if pred is not None
                            else f"no {name} data at so few steps."))
        else:  # its best within the budget, not merely its most steps
            preds = [(k, p.value) for k in range(1, steps + 1) if (p := _predict(law, metric, r, k)) is not None]
            if not preds:
                continue
            k, q = max(preds, key=lambda t: (-t[1] if lower_is_better(metric) else t[1], -t[0]))
            parts.append(f"The {_size_label(params)} model could run up to {steps_text(steps, r.sampler)}; its "
                         f"best, {steps_text(k)}, predicts {name} {qf(q)}, limited by its size.")
    parts += cost.observations(rows)
    if best.basis.startswith("calibrated:"):
        parts.append(f"Quality is as measured by 'ldmpick calibrate' on {best.basis.split(':', 1)[1]} (its own scale, "
                     "not comparable with the paper's FIDs), fitted per model and sampler.")
    elif best.basis == "anchor":
        a = law.anchors[best.model]
        parts.append(f"{best.model} has its own quality anchor (FID {a.fid:g} at {steps_text(a.steps, a.sampler)}, "
                     f"{a.source}): the law's step curve is applied relative to it.")
    elif best.basis in ("transferred", "calibrated-response"):
        how = (best.detail.replace("transferred from", "moved along the step response of", 1)
               if best.basis == "transferred" else f"moved along its {best.detail}")
        parts.append(f"Quality is {scale_of_metric(metric).description}: {best.model}'s published point "
                     f"{how}; its "
                     f"80% interval, {qf(best.low or 0.0)}-{qf(best.high or 0.0)}, is wider than a published "
                     "point's (its width is what held-out published sweeps needed).")
    elif best.basis.startswith("published"):
        how = {"published": "as published", "published-interpolated": "interpolated between published step counts",
               "published-held": "held at its value at the most published steps"}.get(best.basis, best.basis)
        parts.append(f"Quality is {scale_of_metric(metric).description}, {how}; values on other scales are not "
                     "compared with it.")
    pred = _predict(law, metric, row, best.steps)
    flags = [f for f in (pred.flags if pred is not None else []) if f != pred.detail]  # (the detail is said above)
    if flags:  # held past the data, steps or sampler not stated by the source, ...
        parts.append("Note: " + "; ".join(flags) + ".")
    return " ".join(parts)


def sampler_names(text: str | None) -> list[str]:
    from ldmpick.models.samplers import parse_sampler_list

    return parse_sampler_list(text) if text is not None else list(SAMPLERS)
