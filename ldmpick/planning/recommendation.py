"""``recommend`` as one call: parse the request's lists and hand it to the planning layer (``plan_selection``, the
same one ``generate`` uses). No printing: notices go to the ``notify`` callback as they arise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.costs import DEFAULT
from ldmpick.planning.plan import PLAN_PERCENTILE


@dataclass
class Recommendation:
    selection: Any  # selector.Selection
    source: dict[str, Any]  # where the numbers came from: the law file, and the profile for measured costs


def recommend(budget: str, *, profile: str | None = None, percentile: float = PLAN_PERCENTILE, metric: str = "fid",
              models: str | None = None, samplers: str | None = None, max_steps: int = 100,
              resolution: int | None = None, batch: int | None = None, cfg: bool | None = None,
              mode: str | None = None, cost_model: str = DEFAULT, top: int = 5, law_file: Path | None = None,
              notify: Callable[[str], None] = lambda message: None, knobs: str | None = None) -> Recommendation:
    """The model, sampler and step count with the best predicted ``metric`` within ``budget``. With the default
    ``fid`` and models that only published scales know (real families), a notice names the ``--metric`` that ranks
    most of them (``selector.metric_hint``). ``knobs``: ``auto`` (default), ``none`` or knob lists (``plan_selection``)."""
    from ldmpick.models.catalogue import parse_model_list
    from ldmpick.costs import cost_model as find_cost_model
    from ldmpick.planning.plan import plan_selection
    from ldmpick.planning.selector import sampler_names

    find_cost_model(cost_model)  # an unknown name first, before the other checks
    plan = plan_selection(budget, profile_ref=profile, percentile=percentile, metric=metric,
                          models=parse_model_list(models) if models is not None else None,
                          samplers=sampler_names(samplers) if samplers is not None else None,
                          max_steps=max_steps, resolution=resolution, batch=batch, cfg=cfg, mode=mode,
                          cost=cost_model, top=top, law_file=law_file, notify=notify, knobs=knobs or "auto")
    if plan.selection.unranked and metric == "fid":
        from ldmpick.planning.selector import metric_hint

        hint = metric_hint(plan.law, [u["model"] for u in plan.selection.unranked], metric)
        if hint:
            notify(f"note: {hint}")
    return Recommendation(plan.selection, plan.source)
