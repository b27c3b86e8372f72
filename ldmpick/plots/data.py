"""Which measured quality points the quality-against-latency plot draws. No printing, no matplotlib."""

from __future__ import annotations

import dataclasses
from typing import Any


def measured_metric(metric: str) -> str:
    """The table metric a plot metric is drawn from (prompt-acc: the calibrated rows' prompt_acc)."""
    from ldmpick.quality.scales import CALIBRATED_METRIC

    return CALIBRATED_METRIC.get(metric, metric)


def plot_points(law: Any, metric: str) -> list[Any]:
    """The quality-table points of ``metric`` (shipped table and the user's), each model's only from the
    calibration it is predicted from (the law's calibrated family for it), relabelled as ``metric``."""
    from ldmpick.quality.table import load_tables

    measured = measured_metric(metric)

    def in_its_fit(p: Any) -> bool:
        fam = law.calibrated_for(p.model, p.sampler, measured)
        return fam is None or (p.dataset, p.guidance, p.num_samples) == (fam.dataset, fam.guidance, fam.samples)

    return [dataclasses.replace(p, metric=metric) for pts, _ in load_tables([]) for p in pts
            if p.metric == measured and in_its_fit(p)]


def knob_frontier(profile: Any, law: Any, metric: str, percentile: float, knobs: str, models: list[str] | None,
                  samplers: list[str] | None, budget_s: float | None) -> list[dict[str, Any]]:
    """The selector's Pareto frontier with ``knobs`` in the choice (``auto``: the variants the profile measured),
    fastest first: what ``plot --knobs`` draws beside the plain frontier. Each point names its knobs."""
    from ldmpick.costs.latency import MAX_BUDGET_S
    from ldmpick.planning.plan import plan_selection

    plan = plan_selection(budget_s if budget_s is not None else MAX_BUDGET_S, profile=profile, law=law, metric=metric,
                          percentile=percentile, models=models, samplers=samplers, knobs=knobs)
    return [{"model": c.model, "sampler": c.sampler, "steps": c.steps, "knobs": c.knobs,
             "latency_ms": c.latency * 1e3, "value": c.quality}
            for c in sorted(plan.selection.frontier, key=lambda c: c.latency)]
